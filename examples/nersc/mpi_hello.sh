#!/bin/bash
# Stands in for the mpi_hello program of Parsl's MPI tutorial: each rank (an srun task)
# prints one line.  Usage (inside an allocation): srun -n 4 -N 2 mpi_hello.sh hello MSG
echo "$1 $2 from rank ${SLURM_PROCID:-0} of ${SLURM_NTASKS:-1} on $(hostname)"
