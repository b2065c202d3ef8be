#!/usr/bin/env bash
# A private single-node Slurm (munged + slurmctld + slurmd) for testing `srun` launches of
# `engine train` on this machine. Everything (config, key, state, spool, logs, pid files)
# lives under LA3_SLURM_DIR; nothing in /etc is touched and the system services are not used.
#
#   scripts/slurm/local_cluster.sh start    # idempotent; waits until the node is idle
#   scripts/slurm/local_cluster.sh status   # daemons, sinfo, srun --mpi=list
#   scripts/slurm/local_cluster.sh stop     # stops the daemons this script started (by pid file)
#   scripts/slurm/local_cluster.sh env      # prints `export SLURM_CONF=...` for eval
#
# Clients must see the private config: `export SLURM_CONF=$LA3_SLURM_DIR/etc/slurm.conf`
# (or eval "$(scripts/slurm/local_cluster.sh env)").
#
# Environment: LA3_SLURM_DIR (default /tmp/la3-slurm), LA3_SLURM_PORT (slurmctld port,
# default 6817; slurmd uses port+1), LA3_SLURM_TIMEOUT (seconds to wait for the node, 60).
# Needs the Debian packages slurmctld slurmd slurm-client munge (Slurm 22.05 in Debian 12)
# and root (the daemons run as root; SlurmUser=root).
set -euo pipefail

dir=${LA3_SLURM_DIR:-/tmp/la3-slurm}
port=${LA3_SLURM_PORT:-6817}
timeout=${LA3_SLURM_TIMEOUT:-60}
conf=$dir/etc/slurm.conf
socket=$dir/munge/munge.socket
host=$(hostname -s)
export PATH=$PATH:/usr/sbin:/sbin  # the daemons and mungekey are in sbin

die() { echo "local_cluster: $*" >&2; exit 1; }

check_packages() {
  local missing=() tool
  for tool in munged mungekey slurmctld slurmd srun sinfo scontrol; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    die "missing ${missing[*]}: install the Debian packages with" \
      "\`apt-get install -y slurmctld slurmd slurm-client munge\`"
  fi
}

# pid of a daemon from its pid file, if that process is alive.
alive_pid() {
  local file=$1 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

write_config() {
  mkdir -p "$dir"/{etc,munge,state,spool,log,run}
  chmod 700 "$dir/munge"
  local cpus memory
  # Every online CPU: nproc would honour OMP_NUM_THREADS (tests set it to 1), and a 1-CPU node
  # cannot start a 2-task step.
  cpus=$(getconf _NPROCESSORS_ONLN)
  memory=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) / 2))
  ((memory > 4096)) && memory=4096
  cat >"$conf" <<EOF
# Written by scripts/slurm/local_cluster.sh: a private single-node cluster.
ClusterName=la3local
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd.%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
PlugStackConfig=$dir/etc/plugstack.conf
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$dir/etc/plugstack.conf"
}

start() {
  check_packages
  [[ $(id -u) == 0 ]] || die "run as root (the private daemons run with SlurmUser=root)"
  write_config
  export SLURM_CONF=$conf

  if ! alive_pid "$dir/run/munged.pid" >/dev/null; then
    [[ -s $dir/munge/munge.key ]] || mungekey --create --keyfile="$dir/munge/munge.key"
    chmod 600 "$dir/munge/munge.key"
    # --force: /tmp (an ancestor of the socket directory) is world-writable with the sticky bit.
    munged --force --socket="$socket" --key-file="$dir/munge/munge.key" \
      --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
      --seed-file="$dir/munge/munged.seed" ||
      die "munged did not start; see $dir/log/munged.log"
  fi
  if ! alive_pid "$dir/run/slurmctld.pid" >/dev/null; then
    slurmctld -f "$conf" -i >>"$dir/log/slurmctld.out" 2>&1 ||
      die "slurmctld did not start; see $dir/log/slurmctld.log and slurmctld.out"
  fi
  if ! alive_pid "$dir/run/slurmd.pid" >/dev/null; then
    slurmd -f "$conf" >>"$dir/log/slurmd.out" 2>&1 ||
      die "slurmd did not start; see $dir/log/slurmd.log and slurmd.out"
  fi

  local waited=0 state=""
  while ((waited < timeout * 2)); do
    state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null | head -1 || true)
    case $state in
      idle | mixed | allocated) echo "local_cluster: node $host $state (SLURM_CONF=$conf)"; return 0 ;;
      down* | drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
    waited=$((waited + 1))
  done
  die "node $host not idle after ${timeout}s (state '${state:-no answer}'); see $dir/log/"
}

stop() {
  local name pid n
  for name in slurmd slurmctld munged; do
    pid=$(alive_pid "$dir/run/$name.pid") || continue
    kill "$pid" 2>/dev/null || true
    for ((n = 0; n < 40; n++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
      echo "local_cluster: $name ($pid) killed" >&2
    fi
    rm -f "$dir/run/$name.pid"
  done
  echo "local_cluster: stopped"
}

status() {
  local name pid running=0
  for name in munged slurmctld slurmd; do
    if pid=$(alive_pid "$dir/run/$name.pid"); then
      echo "$name: running ($pid)"
      running=$((running + 1))
    else
      echo "$name: stopped"
    fi
  done
  if ((running == 3)); then
    export SLURM_CONF=$conf
    sinfo -N -o "%N %T %c %m" || true
    srun --mpi=list 2>&1 || true
  fi
  ((running == 3))
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) die "usage: $0 start|stop|status|env (LA3_SLURM_DIR=${dir})" ;;
esac
