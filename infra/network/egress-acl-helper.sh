#!/bin/sh
# Squid external ACL helper of the egress proxy (see infra/network/squid.ts). For each line
# "SANDBOX_ADDRESS HOST PORT METHOD" (values already URL-encoded by Squid) it asks the API,
# whose argument is the address, whether that sandbox may go there: OK when the answer is
# 204, ERR otherwise (an API that does not answer refuses: the proxy fails closed).
api="$1"
while read -r src host port method rest; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -G \
    --data "src=$src" --data "host=$host" --data "port=$port" --data "method=$method" \
    "$api/internal/egress/decide")
  if [ "$code" = 204 ]; then echo OK; else echo ERR; fi
done
