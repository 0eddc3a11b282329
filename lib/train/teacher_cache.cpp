#include "lib/train/teacher_cache.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "lib/core/error.h"
#include "lib/core/json_io.h"

namespace dsq::train {

namespace {

constexpr char kMagic[8] = {'D', 'S', 'Q', 'T', 'O', 'P', 'K', '1'};

int64_t record_bytes(int64_t k) { return 8 * k + 8; }

}  // namespace

TeacherCacheWriter::TeacherCacheWriter(std::string path, int64_t k, int64_t vocab, int64_t rows,
                                       double temperature, const nlohmann::json& key)
    : path_(std::move(path)), k_(std::min(k, vocab)), vocab_(vocab), rows_(rows),
      temperature_(temperature) {
  f_.open(path_ + ".tmp", std::ios::binary | std::ios::trunc);
  if (!f_) throw IoError("cannot write '" + path_ + ".tmp'");
  std::string head = dump_json(nlohmann::json{{"k", k_}, {"vocab", vocab_}, {"rows", rows_},
                                              {"temperature", temperature_}, {"key", key}});
  head.append((8 - head.size() % 8) % 8, ' ');
  const uint64_t len = head.size();
  f_.write(kMagic, 8);
  f_.write(reinterpret_cast<const char*>(&len), 8);
  f_.write(head.data(), static_cast<std::streamsize>(head.size()));
}

void TeacherCacheWriter::add(const float* logits, int64_t n_rows) {
  DSQ_ASSERT(written_ + n_rows <= rows_, "teacher cache: more rows than announced");
  const int64_t rb = record_bytes(k_);
  std::vector<std::byte> buf(static_cast<size_t>(n_rows * rb));
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t r = 0; r < n_rows; ++r) {
    std::byte* rec = buf.data() + r * rb;
    std::vector<int32_t> ids(static_cast<size_t>(k_));
    std::vector<float> logp(static_cast<size_t>(k_));
    double rest = 0.0;
    teacher_topk(logits + r * vocab_, vocab_, k_, temperature_, ids.data(), logp.data(), &rest);
    std::memcpy(rec, ids.data(), static_cast<size_t>(4 * k_));
    std::memcpy(rec + 4 * k_, logp.data(), static_cast<size_t>(4 * k_));
    std::memcpy(rec + 8 * k_, &rest, 8);
  }
  f_.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
  written_ += n_rows;
}

void TeacherCacheWriter::finish() {
  DSQ_ASSERT(written_ == rows_, "teacher cache: %lld of %lld rows written",
             static_cast<long long>(written_), static_cast<long long>(rows_));
  f_.flush();
  if (!f_) throw IoError("cannot write '" + path_ + ".tmp' (disk full?)");
  f_.close();
  std::filesystem::rename(path_ + ".tmp", path_);
}

std::optional<TeacherCache> TeacherCache::open_if_matches(const std::string& path,
                                                          const nlohmann::json& key) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  TeacherCache c;
  c.file_ = MappedFile::open(path);
  const std::byte* p = c.file_->data();
  const size_t size = c.file_->size();
  uint64_t len = 0;
  if (size < 16 || std::memcmp(p, kMagic, 8) != 0) return std::nullopt;
  std::memcpy(&len, p + 8, 8);
  if (len > size - 16 || len % 8 != 0) return std::nullopt;
  // Anything but the cache this run would write is a miss (the labels are recomputed), never an
  // error: a header that does not parse or has other fields, sizes that do not add up, ids out of
  // the vocabulary, log-probabilities that are not finite and <= 0.
  nlohmann::json h;
  try {
    h = parse_json(std::string_view(reinterpret_cast<const char*>(p + 16), len), path);
  } catch (const Error&) {
    return std::nullopt;
  }
  if (!h.is_object() || !h.contains("key") || h["key"] != key) return std::nullopt;
  for (const char* f : {"k", "vocab", "rows"})
    if (!h.contains(f) || !h[f].is_number_integer() || h[f].get<int64_t>() <= 0) return std::nullopt;
  if (!h.contains("temperature") || !h["temperature"].is_number()) return std::nullopt;
  c.k_ = h["k"].get<int64_t>();
  c.vocab_ = h["vocab"].get<int64_t>();
  c.rows_ = h["rows"].get<int64_t>();
  c.temperature_ = h["temperature"].get<double>();
  const uint64_t data_bytes = size - 16 - len;
  if (c.k_ > c.vocab_ || static_cast<uint64_t>(c.k_) > data_bytes / 8) return std::nullopt;
  const uint64_t rb = static_cast<uint64_t>(record_bytes(c.k_));
  if (data_bytes % rb != 0 || data_bytes / rb != static_cast<uint64_t>(c.rows_)) return std::nullopt;
  c.data_ = p + 16 + len;
  for (int64_t r = 0; r < c.rows_; ++r) {  // ids index the student's logits: check them all
    const TeacherRow row = c.row(r);
    for (int64_t i = 0; i < c.k_; ++i)
      if (row.ids[i] < 0 || row.ids[i] >= c.vocab_ || !(row.logp[i] <= 0.0f) ||
          !std::isfinite(row.logp[i]))
        return std::nullopt;
    if (!(row.p_rest >= 0.0 && row.p_rest <= 1.0)) return std::nullopt;
  }
  return c;
}

TeacherRow TeacherCache::row(int64_t i) const {
  DSQ_ASSERT(i >= 0 && i < rows_, "teacher cache row %lld of %lld", static_cast<long long>(i),
             static_cast<long long>(rows_));
  const std::byte* rec = data_ + i * record_bytes(k_);
  TeacherRow r;
  r.ids = reinterpret_cast<const int32_t*>(rec);
  r.logp = reinterpret_cast<const float*>(rec + 4 * k_);
  r.k = k_;
  std::memcpy(&r.p_rest, rec + 8 * k_, 8);
  return r;
}

}  // namespace dsq::train
