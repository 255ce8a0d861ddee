#!/usr/bin/env bash
# Run the platform with demo data on http://127.0.0.1:8000
#   no environment: SQLite + in-process background jobs (embedded default)
#   DATABASE_URL / REDIS_URL set: PostgreSQL + Redis, with a separate Celery worker and beat
source "$(dirname "$0")/bootstrap.sh"
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"

# Offline the demo bot ticks on the replay feed of the shipped hourly candles: 240x plays one
# candle every 15 s, so it trades within about a minute. Set MARKETDATA_REPLAY_SPEED=1 for real time.
export MARKETDATA_REPLAY_SPEED="${MARKETDATA_REPLAY_SPEED:-240}"

python manage.py migrate --noinput
python manage.py seed_demo
# Seeded offline because the exchange was out of reach: run offline too (the replay feed over
# the seeded candles), or the demo bot would wait for candles from the exchange for ever.
if [ -z "${MARKETDATA_ONLINE+set}" ] && [ -f "${VAR_DIR:-var}/demo-offline" ]; then
  export MARKETDATA_ONLINE=false
  echo "==> the exchange was out of reach when the demo was seeded: running offline on the stored"
  echo "    candles (the replay feed). Set MARKETDATA_ONLINE=true to use the exchange anyway."
fi

if [ -n "${REDIS_URL:-}" ]; then
  echo "==> starting Celery worker and beat (Redis)"
  mkdir -p var/log
  celery -A config worker --pool=threads --concurrency=4 --queues=default,backtests,bots --loglevel=INFO \
    > var/log/worker.log 2>&1 &
  WORKER=$!
  celery -A config beat --loglevel=INFO > var/log/beat.log 2>&1 &
  BEAT=$!
  trap 'kill $WORKER $BEAT 2>/dev/null || true' EXIT
fi
exec python manage.py serve --host "$HOST" --port "$PORT"
