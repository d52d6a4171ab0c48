#!/usr/bin/env bash
# Installs what the browser tests need, idempotently: Debian's chromium and
# sox, and the npm packages pinned in package.json (playwright-core drives
# /usr/bin/chromium; `npx playwright install` cannot download browsers here).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v sox >/dev/null || need_apt+=(sox)
command -v node >/dev/null || need_apt+=(nodejs npm)
if ((${#need_apt[@]})); then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_apt[@]}"
fi

if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/jssip ] || [ ! -x node_modules/.bin/esbuild ]; then
    # esbuild ships its binary as an optional dependency package, so no
    # install script has to run.
    npm ci --no-audit --no-fund
fi
echo "browser test prerequisites present"
