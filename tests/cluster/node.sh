# The local cluster's real worker node: a bridge, containerd + runc, the kubelet, kube-proxy
# and CoreDNS, so that real containers run from locally built images. Sourced by
# tests/cluster/cluster (which defines R, CACHE, die, log, start, stop, alive, wait_for,
# kubectl_, write_kubeconfig); see ../shared/reference/real-node.md for the recipe and its pitfalls.
#
# Addresses: the bridge (and the node's InternalIP, where the apiserver also listens) is
# 198.18.64.1/24, pods get 198.18.64.10-250 with the single route 198.18.0.0/15, the DNS Service
# is 198.19.0.10. Guard rules keep every packet that enters or leaves the bridge on it.
#
# The node is tainted trellis.dev/real-node=true:NoSchedule and labelled trellis.dev/node=real:
# pods land on kwok's fake node unless they tolerate the taint. A namespace opts all its pods
# in with `node_namespace_annotations` (the PodNodeSelector and PodTolerationRestriction
# admission plugins).

NODE_NAME=trellis-node-0
NODE_IP=198.18.64.1
NODE_BRIDGE=trellis-node0
NODE_POD_CIDR=198.18.64.0/24
NODE_GUARD_CHAIN=TRELLIS-NODE-GUARD
DNS_IP=198.19.0.10
NBIN=$CACHE/kubernetes-node-$K8S_VERSION
CBIN=$CACHE/containerd-$CONTAINERD_VERSION
DBIN=$CACHE/coredns-$COREDNS_VERSION
N=$R/node
# Sockets keep short paths (108-byte limit).
CTD_SOCK=$N/ctd.sock
# Sysctls the kubelet (kernel.*, vm.*) and the bridge plugin (ip_forward) change.
NODE_SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables"
# Images every node needs, built by tests/images/build: name -> what runs it.
PAUSE_IMAGE=localhost/trellis/pause:3.10
COREDNS_IMAGE=localhost/trellis/coredns:$COREDNS_VERSION
NODE_COMPONENTS="kube-proxy kubelet containerd"
# Namespace annotations that send every pod of a namespace to the real node.
REAL_NODE_LABEL=trellis.dev/node=real
REAL_NODE_SELECTOR_ANNOTATION=scheduler.alpha.kubernetes.io/node-selector
REAL_NODE_TOLERATIONS_ANNOTATION=scheduler.alpha.kubernetes.io/defaultTolerations
REAL_NODE_TOLERATIONS='[{"key":"trellis.dev/real-node","operator":"Exists","effect":"NoSchedule"}]'


ctr_() { "$CBIN/ctr" --address "$CTD_SOCK" --namespace k8s.io "$@"; }

node_need() {
  command -v runc >/dev/null || die "runc not found: the real node needs it (Debian: apt-get install -y runc)"
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] \
    || die "CNI plugins not found in /usr/lib/cni: the real node needs bridge, host-local and loopback (Debian: apt-get install -y containernetworking-plugins)"
  command -v iptables >/dev/null || die "iptables not found: kube-proxy and the node's guard rules need it (Debian: apt-get install -y iptables)"
  command -v buildah >/dev/null || die "buildah not found: the node's images are built with it (Debian: apt-get install -y buildah)"
  command -v conntrack >/dev/null || die "conntrack not found: kube-proxy needs it (Debian: apt-get install -y conntrack)"
  [ "$EUID" = 0 ] || die "the real node needs root (bridge, iptables, mounts, cgroups): run as root"
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null \
    || die "the overlay filesystem is missing: containerd's snapshotter needs it (modprobe overlay)"
  [ -d /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null \
    || die "br_netfilter is not loaded: kube-proxy's Service rules need it for pods on one bridge (modprobe br_netfilter)"
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    die "bridge $NODE_BRIDGE already exists but no node of this checkout is recorded: another checkout's cluster may run (stop it), or remove the leftover with 'ip link del $NODE_BRIDGE'"
  fi
}

# Paths the kubelet and containerd create whatever their flags say; `down` removes those that
# did not exist before `up` (recorded here), and never another kubelet's.
NODE_HOST_PATHS="/var/lib/kubelet /var/lib/cni /var/log/containers /run/containerd"

node_save_host_paths() {
  local p
  for p in $NODE_HOST_PATHS; do
    [ -e "$p" ] && echo "$p"
  done >"$N/host-paths.preexisting"
  # kube-proxy and the kubelet add KUBE-FIREWALL (filter) even where --cleanup leaves it.
  iptables -w -S KUBE-FIREWALL >/dev/null 2>&1 && echo "iptables:KUBE-FIREWALL" >>"$N/host-paths.preexisting"
  ip6tables -w -S KUBE-FIREWALL >/dev/null 2>&1 && echo "ip6tables:KUBE-FIREWALL" >>"$N/host-paths.preexisting"
  return 0
}

node_remove_host_paths() {
  local p
  for p in $NODE_HOST_PATHS; do
    grep -qx "$p" "$N/host-paths.preexisting" 2>/dev/null && continue
    [ -e "$p" ] && rm -rf "$p"
  done
  local ipt
  for ipt in iptables ip6tables; do
    grep -qx "$ipt:KUBE-FIREWALL" "$N/host-paths.preexisting" 2>/dev/null && continue
    "$ipt" -w -S KUBE-FIREWALL >/dev/null 2>&1 || continue
    "$ipt" -w -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
    "$ipt" -w -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
    "$ipt" -w -F KUBE-FIREWALL 2>/dev/null || true
    "$ipt" -w -X KUBE-FIREWALL 2>/dev/null || true
  done
  # In paths that existed, only what points into this node.
  find /var/log/containers -maxdepth 1 -lname "$N/*" -delete 2>/dev/null || true
  rm -f /var/lib/cni/results/trellis-node-* 2>/dev/null || true
}

node_save_sysctls() {
  local s
  for s in $NODE_SYSCTLS; do
    [ -e "/proc/sys/${s//.//}" ] && echo "$s=$(sysctl -n "$s")"
  done >"$N/sysctls.saved"
}

node_restore_sysctls() {
  [ -f "$N/sysctls.saved" ] || return 0
  sysctl -q -p "$N/sysctls.saved" >/dev/null 2>&1 || log "could not restore every sysctl of $N/sysctls.saved"
}

node_network_up() {
  ip link add "$NODE_BRIDGE" type bridge
  ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Guard: nothing is forwarded between the bridge and any other interface, and pods never
  # reach an address outside 198.18.0.0/15 (their only route anyway).
  iptables -w -N "$NODE_GUARD_CHAIN"
  iptables -w -A "$NODE_GUARD_CHAIN" -i "$NODE_BRIDGE" ! -o "$NODE_BRIDGE" -j DROP
  iptables -w -A "$NODE_GUARD_CHAIN" ! -i "$NODE_BRIDGE" -o "$NODE_BRIDGE" -j DROP
  iptables -w -A "$NODE_GUARD_CHAIN" -s "$NODE_POD_CIDR" ! -d 198.18.0.0/15 -j DROP
  iptables -w -I FORWARD 1 -j "$NODE_GUARD_CHAIN"
}

node_network_down() {
  iptables -w -D FORWARD -j "$NODE_GUARD_CHAIN" 2>/dev/null || true
  iptables -w -F "$NODE_GUARD_CHAIN" 2>/dev/null || true
  iptables -w -X "$NODE_GUARD_CHAIN" 2>/dev/null || true
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
}

node_pki() {
  local P=$R/pki
  (
    cd "$P"
    # The kubelet's client identity (Node authorizer) and serving certificate, kube-proxy's identity.
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:nodes/CN=system:node:$NODE_NAME" -keyout kubelet.key -out kubelet.csr
    openssl x509 -req -in kubelet.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile cli.ext -out kubelet.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$NODE_NAME" -keyout kubelet-serving.key -out kubelet-serving.csr
    printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=critical,CA:FALSE\n' "$NODE_IP" "$NODE_NAME" > kubelet-serving.ext
    openssl x509 -req -in kubelet-serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile kubelet-serving.ext -out kubelet-serving.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=system:kube-proxy" -keyout kube-proxy.key -out kube-proxy.csr
    openssl x509 -req -in kube-proxy.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile cli.ext -out kube-proxy.crt
  ) >>"$R/logs/pki.log" 2>&1 || { cat "$R/logs/pki.log" >&2; die "generating the node's certificates with openssl failed (see above)"; }
}


node_configs() {
  mkdir -p "$N/cni" "$N/certs.d/_default" "$N/kubelet" "$N/pod-logs" "$N/cni-results"
  # No image is ever pulled: every registry resolves to a closed local port.
  cat >"$N/certs.d/_default/hosts.toml" <<'HOSTS'
server = "https://127.0.0.1:1"
[host."https://127.0.0.1:1"]
  capabilities = ["pull", "resolve"]
HOSTS
  cat >"$N/containerd.toml" <<CTD
version = 3
root = "$N/containerd/root"
state = "$N/containerd/state"
[grpc]
  address = "$CTD_SOCK"
[ttrpc]
  address = "$CTD_SOCK.ttrpc"
[plugins]
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '$N/certs.d'
  [plugins.'io.containerd.cri.v1.runtime']
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = '$N/cni'
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
CTD
  cat >"$N/cni/10-trellis.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "trellis-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$N/cni-ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR", "rangeStart": "198.18.64.10", "rangeEnd": "198.18.64.250", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "198.18.0.0/15"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
  echo "nameserver 127.0.0.1" >"$N/resolv.conf"
  write_kubeconfig "$N/kubelet.kubeconfig" kubelet
  write_kubeconfig "$N/kube-proxy.kubeconfig" kube-proxy
  cat >"$N/kubelet.yaml" <<KL
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CTD_SOCK
address: $NODE_IP
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
tlsCertFile: $R/pki/kubelet-serving.crt
tlsPrivateKeyFile: $R/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $R/pki/ca.crt}
authorization:
  mode: Webhook
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $N/resolv.conf
registerWithTaints:
- {key: trellis.dev/real-node, value: "true", effect: NoSchedule}
failSwapOn: false
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
podLogsDir: $N/pod-logs
makeIPTablesUtilChains: false
serializeImagePulls: false
maxPods: 110
shutdownGracePeriod: 0s
KL
  cat >"$N/kube-proxy.yaml" <<KP
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $N/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $NODE_POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
nodePortAddresses: [$NODE_IP/32]
iptables: {localhostNodePorts: false, masqueradeAll: false}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
KP
}

node_images() {
  local missing=
  ctr_ images ls -q 2>/dev/null | grep -qx "$PAUSE_IMAGE" || missing=1
  ctr_ images ls -q 2>/dev/null | grep -qx "$COREDNS_IMAGE" || missing=1
  [ -z "$missing" ] && return 0
  "$HERE/../images/build" node >&2 || die "building the node's images (pause, CoreDNS) failed (see above)"
  "$HERE/../images/build" import pause coredns >&2 || die "importing the node's images into containerd failed (see above)"
}

# CoreDNS as a Deployment in kube-system on the real node, behind Service kube-dns (198.19.0.10).
node_coredns() {
  kubectl_ apply --server-side --field-manager=trellis-cluster -f - >/dev/null <<DNS
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    cluster.local:53 in-addr.arpa:53 {
        errors
        health :18080
        ready :18181
        kubernetes cluster.local in-addr.arpa {
            pods insecure
        }
        cache 30
    }
    # Nothing outside the cluster resolves: pods never learn an address off this machine.
    .:53 {
        errors
        template ANY ANY {
            rcode NXDOMAIN
        }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      nodeSelector: {trellis.dev/node: real}
      tolerations: [{key: trellis.dev/real-node, operator: Exists, effect: NoSchedule}]
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 18181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 18080}, periodSeconds: 10}
        resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
DNS
}

node_up() {
  local t0=$SECONDS
  node_pki
  node_configs

  start containerd "$CBIN/containerd" --config "$N/containerd.toml"
  wait_for containerd 60 ctr_ version || die "containerd did not start (see $R/logs/containerd.log)"
  node_images

  start kubelet "$NBIN/kubelet" --config="$N/kubelet.yaml" --kubeconfig="$N/kubelet.kubeconfig" \
    --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" --root-dir="$N/kubelet" --cert-dir="$N/kubelet/pki" \
    --node-labels=trellis.dev/node=real
  start kube-proxy "$NBIN/kube-proxy" --config="$N/kube-proxy.yaml"
  wait_for "kubelet node Ready" 120 kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s \
    || die "the real node $NODE_NAME did not become Ready (see $R/logs/kubelet.log and $R/logs/containerd.log)"
  log "real node $NODE_NAME Ready in $((SECONDS - t0))s"
  node_coredns
  wait_for "kubelet CoreDNS Ready" 120 kubectl_ -n kube-system rollout status deployment/coredns --timeout=2s \
    || die "CoreDNS did not become Ready on $NODE_NAME (kubectl -n kube-system describe pod -l k8s-app=kube-dns; $R/logs/kubelet.log)"
  log "CoreDNS Ready after $((SECONDS - t0))s"
}

# Kills every container shim this node started (their sockets live under $N) and what runs in them.
node_kill_shims() {
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CTD_SOCK" 2>/dev/null || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# Unmounts everything under $N, deepest first.
node_unmount() {
  local m
  for m in $(findmnt -rn -o TARGET | grep "^$N/" | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}

# Removes the kubepods cgroups this node's kubelet made (cgroup v1 hierarchies and v2).
node_cgroups_down() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/unified/kubepods; do
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# Kills and deletes every task (pod sandboxes and containers) of this node's containerd.
node_kill_tasks() {
  alive containerd || return 0
  local id
  for id in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks kill --all --signal SIGKILL "$id" >/dev/null 2>&1 || true
  done
  sleep 0.5
  for id in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true
  done
}

# Stops the node and undoes what it did to the host but the bridge, the guard rules and the
# sysctls (cmd_down_locked does those once the apiserver, bound to the bridge, has stopped).
node_down() {
  [ -d "$N" ] || return 0
  stop kubelet
  stop kube-proxy
  if [ -x "$NBIN/kube-proxy" ]; then "$NBIN/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  node_kill_tasks
  stop containerd
  node_kill_shims
  node_unmount
  node_cgroups_down
  node_remove_host_paths
}

node_status() {
  local ok=0 c
  for c in $NODE_COMPONENTS; do
    if alive "$c"; then
      echo "$c: running (pid $(pid_of "$c"), rss $(( $(ps -o rss= -p "$(pid_of "$c")") / 1024 )) MiB)"
    else
      echo "$c: NOT running"; ok=1
    fi
  done
  if kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True; then
    echo "node $NODE_NAME: Ready"
  else
    echo "node $NODE_NAME: NOT Ready"; ok=1
  fi
  return $ok
}
