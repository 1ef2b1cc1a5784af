#!/bin/sh
# Entrypoint of the cachewarm image (Dockerfile at the repo root).
#
# ECS injects secrets as whole environment variables, but the app wants them inside other values.
# This script assembles them, then drops the pieces, and execs the command (so signals reach
# celery directly and warm shutdown works):
#
#   REDIS_AUTH_TOKEN  spliced into REDIS_URL (and CACHE_REDIS_URL) when those carry no credentials:
#                     rediss://host:6379/0  ->  rediss://:TOKEN@host:6379/0
#   FLOWER_USER, FLOWER_PASSWORD
#                     joined into FLOWER_BASIC_AUTH=user:password when that is not set already.
#
# With none of these set (docker compose, a laptop) it changes nothing.
set -eu

with_token() {
    case "$1" in
        "") printf '%s' "" ;;
        *://*@*) printf '%s' "$1" ;;
        *://*) printf '%s://:%s@%s' "${1%%://*}" "$REDIS_AUTH_TOKEN" "${1#*://}" ;;
        *) printf '%s' "$1" ;;
    esac
}

if [ -n "${REDIS_AUTH_TOKEN:-}" ]; then
    if [ -n "${REDIS_URL:-}" ]; then
        REDIS_URL=$(with_token "$REDIS_URL")
        export REDIS_URL
    fi
    if [ -n "${CACHE_REDIS_URL:-}" ]; then
        CACHE_REDIS_URL=$(with_token "$CACHE_REDIS_URL")
        export CACHE_REDIS_URL
    fi
fi
unset REDIS_AUTH_TOKEN

if [ -z "${FLOWER_BASIC_AUTH:-}" ] && [ -n "${FLOWER_PASSWORD:-}" ]; then
    FLOWER_BASIC_AUTH="${FLOWER_USER:-flower}:${FLOWER_PASSWORD}"
    export FLOWER_BASIC_AUTH
fi
unset FLOWER_USER FLOWER_PASSWORD

if [ "$#" -eq 0 ]; then
    set -- celery -A workers worker --loglevel=INFO
fi
exec "$@"
