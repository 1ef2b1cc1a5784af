#!/bin/sh
# Entrypoint of the cachewarm image (Dockerfile at the repo root).
#
# ECS injects secrets as whole environment variables, but the app wants them inside other values.
# This script assembles them, then drops the pieces, and execs the command (so signals reach
# celery directly and warm shutdown works):
#
#   REDIS_BROKER_USERNAME, REDIS_BROKER_PASSWORD
#                     an ACL user (ElastiCache RBAC, production: the "broker" user) spliced into
#                     REDIS_URL when it carries no credentials:
#                     rediss://host:6379/0  ->  rediss://broker:PASSWORD@host:6379/0
#   REDIS_CACHE_USERNAME, REDIS_CACHE_PASSWORD
#                     the same for CACHE_REDIS_URL (production: the "cache" user, limited to the cache's
#                     key prefix). The stack sets CACHE_REDIS_URL to the same endpoint as REDIS_URL.
#                     Users and passwords must be URL-safe (letters, digits, "-", ".", "_", "~"): the
#                     stack generates letters and digits; anything else stops the container.
#   REDIS_AUTH_TOKEN  (the AUTH-token way, without ACL users) spliced into REDIS_URL and CACHE_REDIS_URL
#                     when they still carry no credentials:
#                     rediss://host:6379/0  ->  rediss://:TOKEN@host:6379/0
#   FLOWER_USER, FLOWER_PASSWORD
#                     joined into FLOWER_BASIC_AUTH=user:password when that is not set already.
#
# With none of these set (docker compose, a laptop) it changes nothing.
set -eu

# with_credentials URL USERINFO: URL with USERINFO ("user:password" or ":token") unless it has some.
with_credentials() {
    case "$1" in
        "") printf '%s' "" ;;
        *://*@*) printf '%s' "$1" ;;
        *://*) printf '%s://%s@%s' "${1%%://*}" "$2" "${1#*://}" ;;
        *) printf '%s' "$1" ;;
    esac
}

with_token() {
    with_credentials "$1" ":$REDIS_AUTH_TOKEN"
}

url_safe() {
    case "$2" in
        *[!A-Za-z0-9._~-]*)
            echo "entrypoint: $1 holds characters that need escaping in a URL; use letters and digits" >&2
            exit 64
            ;;
    esac
}

# splice_user URL_VARIABLE USERNAME_VARIABLE PASSWORD_VARIABLE
splice_user() {
    eval "url=\${$1:-} user=\${$2:-} password=\${$3:-}"
    if [ -n "$url" ] && [ -n "$password" ]; then
        url_safe "$2" "$user"
        url_safe "$3" "$password"
        url=$(with_credentials "$url" "$user:$password")
        eval "$1=\$url"
        export "$1"
    fi
}

splice_user REDIS_URL REDIS_BROKER_USERNAME REDIS_BROKER_PASSWORD
splice_user CACHE_REDIS_URL REDIS_CACHE_USERNAME REDIS_CACHE_PASSWORD
unset REDIS_BROKER_USERNAME REDIS_BROKER_PASSWORD REDIS_CACHE_USERNAME REDIS_CACHE_PASSWORD url user password

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
