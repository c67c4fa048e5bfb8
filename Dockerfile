# replicator's image, built from source with the official Rust image.
#   docker build -t replicator .                       (replicator)
#   docker build --target demo -t replicator-demo .    (the demo app)
# Without a registry, scripts/build-images makes the same images here.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Static binaries (glibc, crt-static) for whatever platform builds them.
RUN target=$(rustc -vV | sed -n 's/^host: //p') \
 && RUSTFLAGS='-C target-feature=+crt-static' cargo build --locked --profile image --target "$target" \
      -p replicator -p replicator-demo --bin replicator --bin replicator-demo \
 && mkdir /out && cp "target/$target/image/replicator" "target/$target/image/replicator-demo" /out/

FROM scratch AS demo
COPY --from=build /out/replicator-demo /replicator-demo
EXPOSE 3000
ENTRYPOINT ["/replicator-demo"]

# Last, so a plain `docker build .` gives replicator. Certificates go in /ssl
# (ca.pem and cert.pem/key.pem, or server-cert.pem/server-key.pem); mount the
# engine's socket or set DOCKER_HOST. 9090 (dashboard, health, metrics, no
# client certificate) only shows unless serve is given --dashboard-actions.
FROM scratch AS replicator
COPY --from=build /out/replicator /replicator
EXPOSE 8443 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s CMD ["/replicator", "healthcheck"]
ENTRYPOINT ["/replicator"]
CMD ["serve", "--certs", "/ssl", "--metrics-listen", "0.0.0.0:9090"]
