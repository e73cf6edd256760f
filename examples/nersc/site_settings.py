"""Site settings shared by the NERSC examples, from the environment, so the same scripts
run at NERSC, on another Slurm cluster, or on the local test cluster (scripts/local-slurm).

    FARM_SLURM_PARTITION   partition (default: the cluster's default partition)
    FARM_SLURM_OPTIONS     extra #SBATCH lines, e.g. "#SBATCH -C cpu\\n#SBATCH -q debug"
    FARM_SLURM_ACCOUNT     account to charge (default: your default account)
    FARM_WORKER_INIT       shell lines run before the pools start, e.g.
                           "module load python; source activate farm"
    FARM_SLURM_CORES       cores per node to give each pool (srun -c); default: Slurm's
"""

import os

PARTITION = os.environ.get("FARM_SLURM_PARTITION") or None
ACCOUNT = os.environ.get("FARM_SLURM_ACCOUNT") or None
OPTIONS = os.environ.get("FARM_SLURM_OPTIONS", "").replace("\\n", "\n")
WORKER_INIT = os.environ.get("FARM_WORKER_INIT", "")
CORES = os.environ.get("FARM_SLURM_CORES")
SRUN_CORES = f"-c {CORES}" if CORES else ""
