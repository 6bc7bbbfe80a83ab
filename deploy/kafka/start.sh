#!/usr/bin/env bash
# Start a single-node Apache Kafka broker (KRaft, broker+controller) for development and tests.
#   deploy/kafka/start.sh    -> prints FRONTDESK_TEST_KAFKA=127.0.0.1:<port> on its last line
#   deploy/kafka/stop.sh
#   deploy/kafka/restart.sh  (stop + start, same data: the broker-restart tests use it)
# The jars come from Maven Central (pom.xml here) into lib/ on first use.
# Data and logs live in ${FRONTDESK_STATE_DIR:-.state}/kafka; the client port
# is ${FRONTDESK_KAFKA_PORT:-19092}, the controller port the next one up.
# Running it again while the broker is up changes nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${FRONTDESK_STATE_DIR:-$here/../../.state}
mkdir -p "$state"; state=$(cd "$state" && pwd)
port=${FRONTDESK_KAFKA_PORT:-19092}
cport=${FRONTDESK_KAFKA_CONTROLLER_PORT:-$((port + 1))}
# Topics created on first use get this many partitions; faust's
# topic_partitions (automation/worker) must agree, see docs/worker.md.
partitions=${FRONTDESK_KAFKA_PARTITIONS:-8}
dir=$state/kafka
pidfile=$dir/broker.pid

accepting() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if ! command -v java >/dev/null; then
  echo "java is not installed: run deploy/install-deps.sh" >&2; exit 1
fi
if [ ! -d "$here/lib" ] || ! ls "$here"/lib/kafka_2.13-*.jar >/dev/null 2>&1; then
  echo "fetching the Kafka jars with mvn into $here/lib ..." >&2
  (cd "$here" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=lib) >&2
fi

mkdir -p "$dir/data" "$dir/logs"
if running && accepting; then
  echo "FRONTDESK_TEST_KAFKA=127.0.0.1:$port"; exit 0
fi

cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
num.partitions=$partitions
auto.create.topics.enable=true
log.dirs=$dir/data
# A development broker: keep a day of data and small segments.
log.retention.hours=24
log.segment.bytes=67108864
PROPS

cat >"$dir/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $dir/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
PROPS

if [ ! -f "$dir/data/meta.properties" ]; then
  # A fixed 22-character base64 cluster id: formatting is done once per data dir.
  java -cp "$here/lib/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    kafka.tools.StorageTool format -t "ZnJvbnRkZXNrLWthZmthMQ" -c "$dir/server.properties" \
    >"$dir/logs/format.log" 2>&1 || { cat "$dir/logs/format.log" >&2; exit 1; }
fi

if ! running; then
  nohup java -Xmx512m -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$here/lib/*" kafka.Kafka "$dir/server.properties" \
    >"$dir/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
fi

for _ in $(seq 1 240); do
  if accepting; then break; fi
  if ! running; then
    echo "the Kafka broker exited; see $dir/logs/" >&2
    tail -n 30 "$dir/logs/stdout.log" "$dir/logs/server.log" >&2 2>/dev/null || true
    exit 1
  fi
  sleep 0.5
done
if ! accepting; then echo "the Kafka broker did not start listening on $port; see $dir/logs/" >&2; exit 1; fi
echo "FRONTDESK_TEST_KAFKA=127.0.0.1:$port"
