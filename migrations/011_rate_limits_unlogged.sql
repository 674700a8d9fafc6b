-- Rate-limit counters are written by every login, registration, refresh and ticket, and are
-- worth nothing after a crash: unlogged, their writes skip the WAL and its flush at commit
-- (a login waited for four such flushes). A PostgreSQL crash empties the table, lifting
-- every limit and back-off at that moment; a clean restart keeps it.
ALTER TABLE rate_limit_counters SET UNLOGGED;
