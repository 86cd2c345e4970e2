# matterline's image: the static binary on Debian, with espeak-ng (whispers and rule
# messages say the caller's name and matter), CA certificates and time zone data,
# running as the non-root user matterline (uid 10001) in /var/lib/matterline.
#
# The binary is built OUTSIDE Docker, into the build context, so that building the
# image needs no Go toolchain image and no registry but the base image's:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(git describe --always)" \
#       -o matterline ./cmd/matterline
#   docker build -t matterline .
#
# BASE defaults to Debian's public slim image; the RUN step below installs the
# packages from Debian's archive. A base that already has them is used as it is and
# nothing is fetched: .ci/docker builds one with debootstrap and imports it as
# matterline-base (docker build --network host --build-arg BASE=matterline-base .).
# A multi-stage build in a golang image is deliberately not used: CI here reaches no
# image registry. See docs/operations.md, "Docker".
ARG BASE=debian:bookworm-slim
FROM ${BASE}

RUN set -eu; \
    if ! command -v espeak-ng >/dev/null || [ ! -e /etc/ssl/certs/ca-certificates.crt ] \
        || [ ! -d /usr/share/zoneinfo ]; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            espeak-ng ca-certificates tzdata; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --system --gid 10001 matterline; \
    useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/matterline --no-create-home \
        --shell /usr/sbin/nologin matterline; \
    install -d -o matterline -g matterline -m 0700 /var/lib/matterline; \
    install -d -m 0755 /etc/matterline

LABEL org.opencontainers.image.title="matterline" \
      org.opencontainers.image.description="SIP B2BUA that looks callers up in Clio and routes them by rules"
COPY matterline /usr/local/bin/matterline
# Fails the build on a binary that does not run here (say, one built with cgo).
RUN matterline version

# Commands run with docker exec (health, rules, calls, clio ...) find the same file
# as the server.
ENV MATTERLINE_CONFIG=/etc/matterline/matterline.yaml
# The state directory (database, recorded messages, speech cache) belongs to the
# non-root user; mount a volume here to keep it across containers.
WORKDIR /var/lib/matterline
VOLUME /var/lib/matterline
# SIP (UDP+TCP), HTTP control API, RTP range. Run with host networking
# (docker run --network host ...): SIP advertises addresses in its messages and RTP
# needs a wide port range, and both break behind port publishing and NAT.
EXPOSE 5060/udp 5060/tcp 8080/tcp 10000-20000/udp
USER 10001:10001
# matterline health asks the running server's /healthz at http.listen.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 CMD ["matterline", "health"]
ENTRYPOINT ["matterline"]
# "--config" (not "-config") is read the same by every version of the command line.
CMD ["serve", "--config", "/etc/matterline/matterline.yaml"]
