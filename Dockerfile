# syntax=docker/dockerfile:1
# Multi-stage build: a static CGO_ENABLED=0 binary on a distroless base (time zone
# data and CA certificates included), running as non-root.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/matterline ./cmd/matterline \
 && mkdir -p /out/data && chmod 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/matterline /usr/local/bin/matterline
# The state directory (database, messages, speech cache) belongs to the non-root
# user; mount a volume here to keep it across containers.
COPY --from=build --chown=65532:65532 /out/data /var/lib/matterline
WORKDIR /var/lib/matterline
VOLUME /var/lib/matterline
# SIP (UDP+TCP), HTTP control API, RTP range. For real calls run with host
# networking (docker run --network host ...): RTP port ranges and NAT do not mix
# well with published ports.
EXPOSE 5060/udp 5060/tcp 8080/tcp 10000-20000/udp
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/matterline"]
CMD ["serve", "-config", "/etc/matterline/matterline.yaml"]
