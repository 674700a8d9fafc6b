-- Every change that can end a credential's life is announced at its commit: the instances'
-- in-process caches of live sessions and clients (auth/live-credentials.ts) drop the entry.
-- A trigger, so that no code path (logout, logout-all, refresh reuse, disable, role change,
-- client disable, a manual UPDATE) can forget to.
CREATE FUNCTION pomodex_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('pomodex_auth', TG_ARGV[0] || ':' || OLD.id::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER sessions_changed AFTER UPDATE OR DELETE ON sessions
  FOR EACH ROW EXECUTE FUNCTION pomodex_auth_changed('session');
CREATE TRIGGER users_changed AFTER UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION pomodex_auth_changed('user');
CREATE TRIGGER api_clients_changed AFTER UPDATE OR DELETE ON api_clients
  FOR EACH ROW EXECUTE FUNCTION pomodex_auth_changed('client');
