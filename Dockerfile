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

# distroless/static: CA certificates and time zones (TLS to Kafka and S3),
# no shell, no package manager, about 2 MB.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/genpipe /out/healthcheck /usr/local/bin/
# Numeric, so that Kubernetes' runAsNonRoot can verify it (65532 is
# distroless's nonroot user). Its home is writable: `genpipe up` keeps
# ./genpipe-data there.
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/genpipe"]
CMD ["help"]
