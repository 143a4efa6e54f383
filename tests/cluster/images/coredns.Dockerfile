# The local node's CoreDNS (tests/cluster/coredns/main.go, built by tests/cluster/build coredns).
FROM scratch
COPY coredns /coredns
ENTRYPOINT ["/coredns"]
