// Scale-out across processes (issue 18, docs/MPI.md): the few collective operations dsq needs,
// over MPI when this build has it (DSQ_WITH_MPI, lib/core/dist/dist.cpp is the only file that
// includes mpi.h) and trivially for one process otherwise. `mpirun -n N dsq quantize ...` runs N
// ranks: every rank computes the same block inputs, the solves of a group (and a MoE layer's
// experts) are split among the ranks by assign() and each result is broadcast from its owner, so
// every rank holds the same state and the output is byte-identical to one process; rank 0 writes
// every file.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace dsq::dist {

// Starts MPI when the process was launched by an MPI launcher (OpenMPI's OMPI_COMM_WORLD_SIZE,
// PMI_SIZE or PMIX_RANK in the environment) and this build has MPI. Throws UsageError when a
// launcher started more than one process of a build without MPI. Idempotent.
void init(int* argc, char*** argv);
// Ends MPI after a successful run (no-op without MPI).
void finalize();

int rank();   // 0 without MPI
int size();   // 1 without MPI
inline bool is_root() { return rank() == 0; }
bool built_with_mpi();

// Blocking broadcast of `bytes` bytes at `data` from `root` to every rank (any size: sent in
// chunks below 2^31 bytes). No-op for one process.
void bcast(void* data, size_t bytes, int root);
// The same for a string whose length only the root knows.
void bcast(std::string& s, int root);
void barrier();
// Ends every rank at once (MPI_Abort) with `code`, after the caller printed why; exits for one
// process. For a rank that failed while the others wait in a collective.
[[noreturn]] void abort_all(int code);

// The owner rank of each item for `ranks` ranks: items in decreasing cost (ties: lower index)
// each go to the least loaded rank (ties: lower rank). Deterministic; for one rank all zeros.
std::vector<int> assign(const std::vector<double>& costs, int ranks);

}  // namespace dsq::dist
