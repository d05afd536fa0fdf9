#!/usr/bin/env bash
# Install the servers the integration tests start: Prometheus, PostgreSQL and ClickHouse (Debian packages)
# and unleash-server (npm, pinned by servers/unleash/package-lock.json).
# Idempotent and quick when everything is present. It never starts a service: the test fixtures
# start their own processes on 127.0.0.1 and stop them by PID.
# Exit status is 1 when something cannot be installed, with the reasons printed here: the tests
# that need a missing server would fail, and make test stops before running them.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_BIN="${ROUTEDECK_PG_BIN:-/usr/lib/postgresql/15/bin}"
problems=()
apt_updated=0

say() { printf 'install-servers: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || return 1
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

# ---- Prometheus ------------------------------------------------------------------------
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    say "prometheus present ($(prometheus --version 2>&1 | head -n1 | awk '{print $3}'))"
elif apt_install prometheus; then
    say "prometheus installed ($(prometheus --version 2>&1 | head -n1 | awk '{print $3}'))"
else
    problems+=("prometheus: not installed and apt-get install prometheus failed (needs root and a Debian package mirror)")
fi

# ---- PostgreSQL --------------------------------------------------------------------------
if [ ! -x "$PG_BIN/initdb" ]; then
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    if [ -n "$found" ] && [ -x "$found/initdb" ]; then
        PG_BIN="$found"
    elif apt_install postgresql; then
        PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    fi
fi
if [ -x "$PG_BIN/initdb" ]; then
    say "postgresql present ($PG_BIN)"
else
    problems+=("postgresql: no initdb under /usr/lib/postgresql/*/bin and apt-get install postgresql failed")
fi

# ---- ClickHouse (Debian packages) ------------------------------------------------------------
CH_BIN="$(command -v clickhouse-server || true)"
[ -z "$CH_BIN" ] && [ -x /usr/sbin/clickhouse-server ] && CH_BIN=/usr/sbin/clickhouse-server
if [ -n "$CH_BIN" ]; then
    say "clickhouse-server present ($CH_BIN)"
elif apt_install clickhouse-server clickhouse-client; then
    say "clickhouse-server installed (the tests start it themselves; its service start is not used)"
else
    problems+=("clickhouse-server: not installed and apt-get install clickhouse-server failed (needs root and a Debian package mirror)")
fi

# ---- unleash-server (npm) ----------------------------------------------------------------
UNLEASH_DIR="$ROOT/servers/unleash"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    problems+=("unleash-server: node and npm are not installed")
else
    want="$(node -p "require('$UNLEASH_DIR/package.json').dependencies['unleash-server']")"
    have="$(node -p "try { require('$UNLEASH_DIR/node_modules/unleash-server/package.json').version } catch (e) { '' }" 2>/dev/null)"
    if [ "$have" = "$want" ] && [ "$UNLEASH_DIR/node_modules/.package-lock.json" -nt "$UNLEASH_DIR/package-lock.json" ]; then
        say "unleash-server $have present"
    elif (cd "$UNLEASH_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
        say "unleash-server $want installed (npm ci)"
    else
        problems+=("unleash-server: npm ci in servers/unleash failed (needs the npm registry)")
    fi
fi

# ---- the JavaScript flagd evaluator and promptfoo (npm, pinned by their package-lock.json) ---------
npm_dir() {  # npm_dir NAME DIR PACKAGE: install DIR's locked dependencies unless PACKAGE is there at its pinned version
    local name="$1" dir="$2" pkg="$3" want have
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        problems+=("$name: node and npm are not installed")
        return
    fi
    want="$(node -p "require('$dir/package.json').dependencies['$pkg']")"
    have="$(node -p "try { require('$dir/node_modules/$pkg/package.json').version } catch (e) { '' }" 2>/dev/null)"
    if [ "$have" = "$want" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
        say "$name $have present"
    elif (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
        say "$name $want installed (npm ci)"
    else
        problems+=("$name: npm ci in ${dir#"$ROOT"/} failed (needs the npm registry)")
    fi
}
npm_dir "@openfeature/flagd-core" "$ROOT/servers/flagd-js" "@openfeature/flagd-core"

# promptfoo: ~230 MB whose better-sqlite3 compiles from source here (its prebuilt binaries cannot be
# fetched), so one installation per lock file is kept in the user's cache and linked into servers/promptfoo.
# Installed without optional dependencies (one downloads a browser) and without peer dependencies; its
# telemetry and update check are off whenever routedeck's tests run it.
PF_DIR="$ROOT/servers/promptfoo"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    problems+=("promptfoo: node and npm are not installed")
else
    pf_hash="$(sha256sum "$PF_DIR/package-lock.json" | cut -c1-16)"
    pf_cache="${XDG_CACHE_HOME:-$HOME/.cache}/routedeck/promptfoo-$pf_hash"
    if [ ! -x "$pf_cache/node_modules/.bin/promptfoo" ] || [ ! -e "$pf_cache/node_modules/promptfoo/drizzle" ]; then
        rm -rf "$pf_cache" && mkdir -p "$pf_cache" && cp "$PF_DIR/package.json" "$PF_DIR/package-lock.json" "$pf_cache/"
        if (cd "$pf_cache" && PROMPTFOO_DISABLE_TELEMETRY=1 npm ci --omit=optional --legacy-peer-deps --no-audit \
                --no-fund --loglevel=error >/dev/null 2>&1); then
            # 0.120.0 looks for its migrations beside dist/ while the package ships them in dist/drizzle
            ln -sfn dist/drizzle "$pf_cache/node_modules/promptfoo/drizzle"
            say "promptfoo $(node -p "require('$pf_cache/node_modules/promptfoo/package.json').version") installed (npm ci, cached in $pf_cache)"
        else
            rm -rf "$pf_cache"
            problems+=("promptfoo: npm ci failed (needs the npm registry, a C++ compiler for better-sqlite3)")
        fi
    else
        say "promptfoo present ($pf_cache)"
    fi
    if [ -d "$pf_cache/node_modules" ]; then
        rm -rf "$PF_DIR/node_modules" && ln -sfn "$pf_cache/node_modules" "$PF_DIR/node_modules"
    fi
fi

for p in "${problems[@]+"${problems[@]}"}"; do say "NOT AVAILABLE: $p"; done
[ "${#problems[@]}" -eq 0 ]
