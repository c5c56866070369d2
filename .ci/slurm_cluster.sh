#!/usr/bin/env bash
# A one-node SLURM cluster on localhost for testing profiles/slurm (tests/cluster/, `pytest -m cluster`).
# Adapted from the project's verified sketch (Debian 12: slurm-wlm 22.05.8, munge 0.5.15; root, no systemd).
#
#   .ci/slurm_cluster.sh up      # install slurmctld/slurmd/slurm-client/munge, write slurm.conf, start the daemons,
#                                # wait until the node is idle and a job runs; re-running reuses what is there
#   .ci/slurm_cluster.sh down    # cancel the cluster's jobs, stop the daemons this script started (by PID file,
#                                # never by name) and remove the config files it wrote
#
# Exit status of `up`: 0 ready, 3 the packages cannot be installed (not root, or apt-get failed: the only case in
# which the test may skip), anything else an error.
#
# The node is node `$(hostname -s)` in partition `debug`, without an accounting database (so `sacct` cannot report
# jobs: the profile's status command is squeue, and MinJobAge is far above 3x its initial status-check delay).
# It is declared with SlurmdParameters=config_overrides as a GPU node (gres gpu:4, 32 CPUs, 256 GB): the profile's
# per-rule requests (GPUs for training, memory per CPU) are what a real GPU partition gets, and SLURM schedules them
# here although the machine has fewer cores and no GPU (nothing is enforced: no cgroups, no device files; the
# jobs of the test workflow use one thread and the CPU).
# /etc/slurm is global to the machine: run one test cluster at a time.
set -euo pipefail

BASE=${SLURM_CI_DIR:-/tmp/dira-slurm-ci}
RUN=$BASE/run
NODE=$(hostname -s)
MARK="# written by dira .ci/slurm_cluster.sh"
MODE=${1:-}
T0=$(date +%s%3N)
log() { printf '[slurm-cluster %6ss] %s\n' "$(awk -v a="$T0" -v b="$(date +%s%3N)" 'BEGIN{printf "%.1f",(b-a)/1000}')" "$*" >&2; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
have_pkgs() { command -v slurmctld && command -v slurmd && command -v sbatch && command -v munged; } >/dev/null

install_pkgs() {
  if have_pkgs; then log "packages already installed"; return; fi
  log "apt-get install slurmctld slurmd slurm-client munge"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           slurmctld slurmd slurm-client munge >/dev/null; } || ! have_pkgs; then
    log "apt-get could not install slurmctld/slurmd/slurm-client/munge"; exit 3
  fi
  log "installed slurm $(slurmd -V | awk '{print $2}'), munge $(dpkg-query -W -f='${Version}' munge)"
}

start_munge() {
  install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
  install -d -o munge -g munge -m 0755 /run/munge
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key  # normally made by the postinst
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then log "munged already answering"; return; fi
  runuser -u munge -- /usr/sbin/munged --force           # daemonizes, writes /run/munge/munged.pid
  cp /run/munge/munged.pid "$RUN/munged.pid"             # remember that we started it
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null
  log "munged started (pid $(cat "$RUN/munged.pid"))"
}

ours() { [ ! -e "$1" ] || head -1 "$1" | grep -qxF "$MARK"; }

write_conf() {
  local f
  for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    ours "$f" || { log "$f exists and was not written by this script: not touching a real cluster"; exit 1; }
  done
  install -d /etc/slurm
  # RealMemory etc. above the hardware is accepted because of config_overrides; DefMemPerCPU and ReturnToService=2
  # are needed for the node to come up and take jobs without memory requests.
  cat >"$RUN/slurm.conf" <<EOF
$MARK
ClusterName=dira-ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
GresTypes=gpu
DefMemPerCPU=500
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=32 RealMemory=256000 Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  printf '%s\nNodeName=%s Name=gpu File=/dev/tty[0-3]\n' "$MARK" "$NODE" >"$RUN/gres.conf"
  local changed=0
  for f in slurm.conf gres.conf; do
    cmp -s "$RUN/$f" "/etc/slurm/$f" || { cp "$RUN/$f" "/etc/slurm/$f"; changed=1; }
  done
  if [ $changed = 0 ]; then log "slurm.conf unchanged"; return; fi
  log "wrote /etc/slurm/slurm.conf and gres.conf"
  if alive "$RUN/slurmctld.pid"; then scontrol reconfigure; log "scontrol reconfigure"; fi
}

start_slurm() {
  if alive "$RUN/slurmctld.pid"; then log "slurmctld already running"; else
    slurmctld -c                                         # daemonizes; -c: start with a clean job state
    for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
    log "slurmctld started (pid $(cat "$RUN/slurmctld.pid"))"
  fi
  if alive "$RUN/slurmd.pid"; then log "slurmd already running"; else
    slurmd
    for _ in $(seq 50); do alive "$RUN/slurmd.pid" && break; sleep 0.2; done
    log "slurmd started (pid $(cat "$RUN/slurmd.pid"))"
  fi
  local st=""
  for _ in $(seq 120); do
    st=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null || true)
    case $st in
      idle|mix|alloc) break ;;
      down*|drain*|drng*|inval*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  if [[ ! $st =~ ^(idle|mix|alloc)$ ]]; then
    log "node not ready (state '$st')"; tail -n 20 "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" >&2; exit 1
  fi
  log "node $NODE is $st; a job ran on $(srun -N1 -n1 -t 1 hostname)"
}

down() {
  local f pid
  if alive "$RUN/slurmctld.pid"; then                    # our cluster: every job on it is a test's
    scancel --full --quiet --partition debug 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(squeue -h -t R,CG,PD 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  for f in slurmd slurmctld munged; do
    if alive "$RUN/$f.pid"; then
      pid=$(cat "$RUN/$f.pid"); kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      log "stopped $f (pid $pid)"
    fi
    rm -f "$RUN/$f.pid"
  done
  for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    if [ -e "$f" ] && ours "$f"; then rm -f "$f"; fi
  done
}

case $MODE in
  up)
    if [ "$(id -u)" -ne 0 ]; then log "cannot install and start slurmctld/slurmd/munge: not root"; exit 3; fi
    mkdir -p "$RUN" "$BASE/state" "$BASE/spool" "$BASE/log"
    install_pkgs; start_munge; write_conf; start_slurm ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
log "done ($MODE)"
