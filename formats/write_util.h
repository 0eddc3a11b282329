// Small pieces the model writers share (GGUF, safetensors, the Hugging Face directory sink).
#pragma once

#include <cstdint>
#include <cstddef>
#include <string>
#include <vector>

namespace dsq::formats {

// Writes all n bytes at offset `at` of fd (retrying short writes and EINTR); IoError naming
// `path` on failure.
void pwrite_all(int fd, const void* p, size_t n, uint64_t at, const std::string& path);

// "a, b, c and 4 more": the first `shown` names of a list, for one-line notes.
std::string name_sample(const std::vector<std::string>& names, size_t shown = 3);

}  // namespace dsq::formats
