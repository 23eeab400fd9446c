#!/usr/bin/env bash
# Pod sandbox benchmarks (root): RunPodSandbox latency in sequence and 50
# at once, stop+remove, beside the CNI plugins' own ADD time for the same
# conflist (the floor), and memory per pod. Each benchmark builds its own
# bridge, subnet and tmpfs state dir, and checks for leaks when done.
#   N=100 hack/bench-pods.sh          # pods in sequence (default 100)
#   CRIT_BENCH_NOMASQ=1 ...           # bridge without ipMasq
# In-process (Go benchmarks in server/): for the issue-5 table beside
# containerd and the plugins through a real socket, run hack/bench-cri.sh.
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
N=${N:-100}
run() { go test ./server -run '^$' -count=1 -bench "$1" -benchtime="$2" | grep -E '^Benchmark|FAIL|left|still'; }
log "sequential: $N pods, then the plugins' own ADD, $N times"
run 'BenchmarkRunPodSandbox$' "${N}x"
run 'BenchmarkBridgeAddDirect$' "${N}x"
log "50 at once (3 rounds)"
run 'BenchmarkRunPodSandbox50$' 3x
run 'BenchmarkBridgeAddDirect50$' 3x
log "memory per pod (shared-PID pods: the only kind with a process, the C init of sandbox/podinit)"
run 'BenchmarkPodMemory$' 1x
