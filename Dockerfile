# replicator's image, built from source with the official Rust image.
#   docker build -t replicator .                       (replicator)
#   docker build --target demo -t replicator-demo .    (the demo app)
# Without a registry, scripts/build-images makes the same images here.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --locked --profile image --target x86_64-unknown-linux-gnu -p replicator -p replicator-demo --bin replicator --bin replicator-demo

FROM scratch AS demo
COPY --from=build /src/target/x86_64-unknown-linux-gnu/image/replicator-demo /replicator-demo
EXPOSE 3000
ENTRYPOINT ["/replicator-demo"]

# Last, so a plain `docker build .` gives replicator. Certificates go in /ssl
# (ca.pem and cert.pem/key.pem, or server-cert.pem/server-key.pem); mount the
# engine's socket or set DOCKER_HOST. Publish 9090 (dashboard, metrics, no
# client certificate) on a trusted interface only.
FROM scratch AS replicator
COPY --from=build /src/target/x86_64-unknown-linux-gnu/image/replicator /replicator
EXPOSE 8443 9090
ENTRYPOINT ["/replicator"]
CMD ["serve", "--certs", "/ssl", "--metrics-listen", "0.0.0.0:9090"]
