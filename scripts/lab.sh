#!/usr/bin/env bash
# `npm run lab`: one command that runs a living lab on this machine. Installs what is missing (npm
# dependencies; InfluxDB and the Mosquitto clients from apt when root), starts a local influxd with
# its data under .lab/, registers a demo device, and runs the gateway with the simulated demo fleet.
# Ctrl-C stops the gateway and the influxd it started. Settings: LAB_MQTT_PORT, LAB_HTTP_PORT,
# LAB_OPS_PORT, LAB_INFLUX_PORT, LAB_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LAB_DIR=${LAB_DIR:-$ROOT/.lab}
MQTT_PORT=${LAB_MQTT_PORT:-1883}
HTTP_PORT=${LAB_HTTP_PORT:-8080}
OPS_PORT=${LAB_OPS_PORT:-9464}
INFLUX_PORT=${LAB_INFLUX_PORT:-8086}
say() { printf '\033[1mlab:\033[0m %s\n' "$*" >&2; }

bash scripts/ensure-system.sh influxdb:influxd mosquitto-clients:mosquitto_pub
if [ ! -d node_modules ] || [ package.json -nt node_modules ]; then
  say "installing npm dependencies"
  npm install --no-audit --no-fund >&2
fi
[ -f dist/src/cli/main.js ] && [ -z "$(find src simulators -newer dist/src/cli/main.js -name '*.ts' | head -1)" ] || npm run --silent build
mkdir -p "$LAB_DIR" && chmod 700 "$LAB_DIR"
# The lab folder may end up in a repository: its secrets and generated passwords must never be committed.
[ -f "$LAB_DIR/.gitignore" ] || cat > "$LAB_DIR/.gitignore" <<'IGNORE'
# Written by `npm run lab`: secrets and generated passwords, never to be committed.
lab.secrets.yaml
*.secrets.yaml
*.sim-credentials.json
*.password
# The audit log's head: not secret, but rewritten with every audit entry.
*.audit-head.json
# A registry edit's lock, present only while a command edits.
*.lock
IGNORE

# InfluxDB: use one already answering on the port, or start our own with data under .lab/influxdb.
INFLUX_URL="http://127.0.0.1:$INFLUX_PORT"
INFLUX_PID=""
if curl -fsS -o /dev/null "$INFLUX_URL/ping" 2>/dev/null; then
  say "using the InfluxDB already running at $INFLUX_URL"
else
  mkdir -p "$LAB_DIR/influxdb"
  cat > "$LAB_DIR/influxdb/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((INFLUX_PORT + 2))"
[meta]
  dir = "$LAB_DIR/influxdb/meta"
[data]
  dir = "$LAB_DIR/influxdb/data"
  wal-dir = "$LAB_DIR/influxdb/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
[monitor]
  store-enabled = false
CONF
  say "starting influxd on $INFLUX_URL (data in $LAB_DIR/influxdb, log in $LAB_DIR/influxd.log)"
  influxd -config "$LAB_DIR/influxdb/influxdb.conf" >"$LAB_DIR/influxd.log" 2>&1 &
  INFLUX_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$INFLUX_URL/ping" 2>/dev/null && break
    kill -0 "$INFLUX_PID" 2>/dev/null || { say "influxd failed to start; see $LAB_DIR/influxd.log"; exit 1; }
    sleep 0.2
  done
fi
cleanup() { [ -n "$INFLUX_PID" ] && kill "$INFLUX_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# A demo device, registered once; its generated password is kept beside the registry (mode 0600), and
# its hash in lab.secrets.yaml (created by `devices add`, named in .gitignore above). It sends test
# data, not a resident's: registered as simulated, so exports leave it out unless asked.
REGISTRY="$LAB_DIR/lab.yaml"
LL="node $ROOT/bin/livinglab.js"
if [ ! -f "$LAB_DIR/demo-ox-0001.password" ]; then
  $LL devices add --registry "$REGISTRY" --data-dir "$LAB_DIR/data" --id demo-ox-0001 --type pulse-oximeter --site demo --vendor demo \
    --subject p-demo-1 --interval 60s --provenance simulated 2>/dev/null > "$LAB_DIR/demo-ox-0001.password"
  chmod 600 "$LAB_DIR/demo-ox-0001.password"
fi
PASSWORD=$(cat "$LAB_DIR/demo-ox-0001.password")

cat >&2 <<INFO

  Living Lab Gateway is starting.
    MQTT broker     mqtt://localhost:$MQTT_PORT   (devices log in with their id and password)
    Health          http://localhost:$HTTP_PORT/healthz
    InfluxDB        $INFLUX_URL  database "livinglab"
    Registry        $REGISTRY     rejects log: $LAB_DIR/data/rejects.ndjson
    Secrets         $LAB_DIR/lab.secrets.yaml   (hashes and project keys: back it up, never commit it)

  Send a reading as the demo pulse oximeter (another terminal):
    mosquitto_pub -h localhost -p $MQTT_PORT -i demo-ox-0001 -u demo-ox-0001 -P '$PASSWORD' -q 1 \\
      -t lab/demo/pulse-oximeter/demo-ox-0001/telemetry \\
      -m "{\"ts\":\"\$(date -u +%FT%TZ)\",\"spo2\":97,\"pulse\":72}"

  Look at it in InfluxDB:
    curl -sG $INFLUX_URL/query --data-urlencode db=livinglab \\
      --data-urlencode "q=SELECT * FROM pulse_oximeter ORDER BY time DESC LIMIT 5"

  A simulated fleet runs beside it (simulators/fleets/demo.yaml: five homes, every device type,
  in real time); its first readings arrive within a minute:
    curl -sG $INFLUX_URL/query --data-urlencode db=livinglab \\
      --data-urlencode "q=SELECT count(*) FROM /.*/ WHERE time > now() - 10m GROUP BY device_type"
  Metrics: http://127.0.0.1:$OPS_PORT/metrics    Readiness: http://127.0.0.1:$OPS_PORT/readyz
  (the ops listener, on loopback only; /api/v1/status and \`livinglab status\` need a staff token:
   LIVINGLAB_TOKEN=\$($LL tokens issue --staff --name me --registry $REGISTRY) \\
     $LL status --url http://localhost:$HTTP_PORT)

  Stop with Ctrl-C.

INFO
$LL serve --registry "$REGISTRY" --data-dir "$LAB_DIR/data" --influx-url "$INFLUX_URL" \
  --mqtt-port "$MQTT_PORT" --http-port "$HTTP_PORT" --ops-port "$OPS_PORT" --fleet "$ROOT/simulators/fleets/demo.yaml" "$@" &
GATEWAY_PID=$!
trap 'kill -TERM $GATEWAY_PID 2>/dev/null; wait $GATEWAY_PID 2>/dev/null; cleanup' INT TERM
wait $GATEWAY_PID
