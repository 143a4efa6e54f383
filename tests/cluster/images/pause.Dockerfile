# The local node's sandbox image: a static pause binary (tests/cluster/images/pause.c).
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
