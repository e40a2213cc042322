#!/usr/bin/env bash
# The whole test suite: installs what the tests need (Debian packages, as
# root), checks formatting and vet, then runs every test with the race
# detector. CI runs exactly this (.ci/run).
#
#   ./scripts/test.sh            the default suite (a few minutes on 2 cores)
#   ./scripts/test.sh -run E2E   extra arguments go to `go test`
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v chromium >/dev/null 2>&1 || need_packages+=(chromium)
command -v npm >/dev/null 2>&1 || need_packages+=(npm)
# promtool, from Debian's prometheus package, checks and unit-tests the alert
# rules (deploy/prometheus); without it that test skips.
command -v promtool >/dev/null 2>&1 || need_packages+=(prometheus)
# Slides in every script: the Noto fonts slide/fonts.go falls back to.
for font in truetype/noto/NotoSans-Regular.ttf:fonts-noto-core opentype/noto/NotoSansCJK-Regular.ttc:fonts-noto-cjk \
  truetype/noto/NotoColorEmoji.ttf:fonts-noto-color-emoji; do
  [ -e "/usr/share/fonts/${font%%:*}" ] || need_packages+=("${font##*:}")
done
# pdftoppm rasterizes the slide PDFs to compare them with the PNGs.
command -v pdftoppm >/dev/null 2>&1 || need_packages+=(poppler-utils)
if ((${#need_packages[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing ${need_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
  else
    echo "!!! cannot install ${need_packages[*]} (not root or no apt-get): the tests that need them will be SKIPPED" >&2
  fi
fi

# axe-core, which the browser test runs on the page, pinned by
# cmd/genpipe/testdata/axe/package-lock.json: installed here with npm ci,
# never downloaded by the test. Without it the accessibility checks are
# SKIPPED (they fail instead under GENPIPE_REQUIRE_BROWSER=1, as in CI).
axe_dir=cmd/genpipe/testdata/axe
if command -v npm >/dev/null 2>&1; then
  if ! cmp -s "$axe_dir/package-lock.json" "$axe_dir/node_modules/.installed-lock.json"; then
    echo "==> npm ci (axe-core for the browser test)"
    npm ci --prefix "$axe_dir" --no-audit --no-fund --loglevel=error
    cp "$axe_dir/package-lock.json" "$axe_dir/node_modules/.installed-lock.json"
  fi
else
  echo "!!! npm not found: the browser test's accessibility checks (axe-core) will be SKIPPED" >&2
fi

echo "==> gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" >&2; echo "$unformatted" >&2; exit 1
fi
echo "==> go vet"
go vet ./...
echo "==> PostgreSQL for the status store tests"
eval "$(./scripts/pgtest.sh start)"
trap './scripts/pgtest.sh stop' EXIT
echo "==> go test -race"
go test -race -count=1 -timeout 20m "$@" ./...

# The fault tests (cmd/genpipe/fault_test.go) run the system as separate
# processes and break one part under load; they skip unless
# GENPIPE_FAULT_TESTS=1. No -race: the code under test runs in the genpipe
# binary the tests build without it, so the detector would only watch the
# test's own HTTP polling, at several times the run time.
echo "==> fault tests (GENPIPE_FAULT_TESTS=1)"
GENPIPE_FAULT_TESTS=1 go test -count=1 -run 'TestFault' -timeout 15m ./cmd/genpipe/
