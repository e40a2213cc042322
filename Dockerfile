# syntax=docker/dockerfile:1
#
# One image for every part of genpipe: the command picks the part
# (api, worker --stage check|generate, notifier, aisim, dlq, doctor, ...).
#
#   docker build -t genpipe .
#   docker run --rm genpipe api -h
#
# deploy/docker-compose.yml and deploy/k8s/ run it; docs/operations.md says how.

# The Go minor version follows go.mod (TestDockerfile checks it).
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# CGO off gives a static binary that needs no libc: the SQLite driver is
# pure Go (modernc.org/sqlite), so nothing needs cgo. healthcheck is for the
# compose healthchecks, since the runtime image has no shell, curl or wget.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/genpipe ./cmd/genpipe && \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/healthcheck ./deploy/healthcheck

# The fonts slides fall back to for the scripts the Go fonts lack (Arabic,
# Hebrew, Devanagari, Thai, CJK, emoji): only the files slide/fonts.go
# loads (about 51 MB), at the paths it looks in, with their licenses.
FROM debian:bookworm-slim AS fonts
RUN apt-get update && \
    apt-get install -y --no-install-recommends fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji && \
    mkdir -p /out/truetype/noto /out/opentype/noto /out/doc && \
    cd /usr/share/fonts/truetype/noto && \
    cp NotoColorEmoji.ttf NotoSans-Regular.ttf NotoSans-Bold.ttf \
       NotoSansArabic-Regular.ttf NotoSansArabic-Bold.ttf NotoSansHebrew-Regular.ttf NotoSansHebrew-Bold.ttf \
       NotoSansDevanagari-Regular.ttf NotoSansDevanagari-Bold.ttf NotoSansThai-Regular.ttf NotoSansThai-Bold.ttf \
       /out/truetype/noto/ && \
    cp /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc /usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc \
       /out/opentype/noto/ && \
    for p in fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji; do \
      cp /usr/share/doc/$p/copyright /out/doc/$p.copyright; done

# distroless/static: CA certificates and time zones (TLS to Kafka and S3),
# no shell, no package manager, about 2 MB.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/genpipe /out/healthcheck /usr/local/bin/
COPY --from=fonts /out/truetype /usr/share/fonts/truetype
COPY --from=fonts /out/opentype /usr/share/fonts/opentype
COPY --from=fonts /out/doc /usr/share/doc/genpipe-fonts
# Numeric, so that Kubernetes' runAsNonRoot can verify it (65532 is
# distroless's nonroot user). Its home is writable: `genpipe up` keeps
# ./genpipe-data there.
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/genpipe"]
CMD ["help"]
