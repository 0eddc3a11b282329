#include "lib/train/adamw.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "lib/core/error.h"
#include "lib/core/hash.h"
#include "lib/core/json_io.h"

namespace dsq::train {

namespace {
// Version 2 ends with an XXH64 of the header and data (chained: each array's hash seeds the
// next), so a corrupt checkpoint is refused instead of trained on.
constexpr char kMagic[8] = {'D', 'S', 'Q', 'C', 'K', 'P', 'T', '2'};
}

double lr_at(const AdamWOptions& o, int64_t step) {
  if (o.warmup > 0 && step < o.warmup)
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  const int64_t span = std::max<int64_t>(1, o.total - o.warmup);
  const double x = std::min(1.0, static_cast<double>(step - o.warmup) / static_cast<double>(span));
  const double lo = o.lr * o.min_lr_ratio;
  return lo + (o.lr - lo) * 0.5 * (1.0 + std::cos(std::numbers::pi * x));
}

AdamW::AdamW(const AdamWOptions& o, const std::vector<Param<float>>& params) : o_(o) {
  for (const auto& p : params) {
    m_.emplace_back(p.w.size(), 0.0f);
    v_.emplace_back(p.w.size(), 0.0f);
  }
}

double AdamW::step(std::vector<Param<float>>& params) {
  DSQ_ASSERT(params.size() == m_.size(), "AdamW: parameter count changed");
  double ss = 0.0;  // in parameter order: the same sum for any thread count
  for (const auto& p : params)
    if (p.trainable)
      for (float g : p.g) ss += static_cast<double>(g) * g;
  const double norm = std::sqrt(ss);
  const double clip = o_.clip > 0.0 && norm > o_.clip ? o_.clip / norm : 1.0;
  const double lr = lr_at(o_, t_);
  ++t_;
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(t_));
  const float b1 = static_cast<float>(o_.beta1), b2 = static_cast<float>(o_.beta2);
  const float step_size = static_cast<float>(lr / bc1), inv_bc2 = static_cast<float>(1.0 / bc2);
  const float eps = static_cast<float>(o_.eps), cf = static_cast<float>(clip);
  for (size_t i = 0; i < params.size(); ++i) {
    auto& p = params[i];
    if (!p.trainable) continue;
    const float decay = p.decay ? static_cast<float>(lr * o_.weight_decay) : 0.0f;
    const float step = step_size * p.lr_scale;
    float* w = p.w.data();
    const float* g = p.g.data();
    float* m = m_[i].data();
    float* v = v_[i].data();
    const int64_t n = static_cast<int64_t>(p.w.size());
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t j = 0; j < n; ++j) {
      const float gj = g[j] * cf;
      m[j] = b1 * m[j] + (1.0f - b1) * gj;
      v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
      w[j] -= decay * w[j];
      w[j] -= step * m[j] / (std::sqrt(v[j] * inv_bc2) + eps);
    }
  }
  return norm;
}

void AdamW::save(const std::string& path, const std::vector<Param<float>>& params,
                 const nlohmann::json& extra) const {
  nlohmann::json h = {{"step", t_}, {"extra", extra}, {"params", nlohmann::json::array()}};
  for (const auto& p : params) h["params"].push_back({{"name", p.name}, {"n", p.w.size()}});
  const std::string head = dump_json(h);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw IoError("cannot write checkpoint '" + tmp + "'");
    const uint64_t len = head.size();
    uint64_t sum = xxh64(head.data(), head.size());
    f.write(kMagic, 8);
    f.write(reinterpret_cast<const char*>(&len), 8);
    f.write(head.data(), static_cast<std::streamsize>(head.size()));
    for (size_t i = 0; i < params.size(); ++i)
      for (const std::vector<float>* v : {&params[i].w, &m_[i], &v_[i]}) {
        f.write(reinterpret_cast<const char*>(v->data()), static_cast<std::streamsize>(v->size() * 4));
        sum = xxh64(v->data(), v->size() * 4, sum);
      }
    f.write(reinterpret_cast<const char*>(&sum), 8);
    f.flush();
    if (!f) throw IoError("cannot write checkpoint '" + tmp + "' (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

nlohmann::json AdamW::load(const std::string& path, std::vector<Param<float>>& params) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IoError("cannot read checkpoint '" + path + "'");
  const auto bad = [&](const std::string& why) {
    return FormatError("'" + path + "': not a checkpoint of this model: " + why);
  };
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  char magic[8];
  uint64_t len = 0;
  if (ec || !f.read(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) throw bad("bad magic");
  if (!f.read(reinterpret_cast<char*>(&len), 8) || len > size - 16) throw bad("bad header");
  uint64_t data_bytes = 8;  // the checksum
  for (const auto& p : params) data_bytes += 3 * 4 * p.w.size();
  if (size - 16 - len != data_bytes) throw bad("truncated data, or not these parameters");
  std::string head(len, '\0');
  if (!f.read(head.data(), static_cast<std::streamsize>(len))) throw bad("truncated header");
  uint64_t sum = xxh64(head.data(), head.size());
  const nlohmann::json h = parse_json(head, path);
  int64_t step = 0;
  try {
    if (!h.is_object() || !h.contains("params") || !h["params"].is_array() ||
        h["params"].size() != params.size() || !h.contains("step") ||
        !h["step"].is_number_integer() || (step = h["step"].get<int64_t>()) < 0)
      throw bad("the parameter list differs");
    for (size_t i = 0; i < params.size(); ++i) {
      const auto& e = h["params"][i];
      if (!e.is_object() || e.value("name", "") != params[i].name ||
          e.value("n", uint64_t{0}) != params[i].w.size())
        throw bad("parameter " + std::to_string(i) + " differs");
    }
  } catch (const nlohmann::json::exception&) {
    throw bad("the parameter list differs");
  }
  std::vector<std::vector<float>> w(params.size()), m(params.size()), v(params.size());
  for (size_t i = 0; i < params.size(); ++i)
    for (std::vector<float>* a : {&w[i], &m[i], &v[i]}) {
      a->resize(params[i].w.size());
      if (!f.read(reinterpret_cast<char*>(a->data()), static_cast<std::streamsize>(a->size() * 4)))
        throw bad("truncated data");
      sum = xxh64(a->data(), a->size() * 4, sum);
    }
  uint64_t stored = 0;
  if (!f.read(reinterpret_cast<char*>(&stored), 8)) throw bad("truncated data");
  if (stored != sum) throw bad("checksum mismatch (a corrupt file)");
  // Only a whole, verified checkpoint replaces the state (in place: the model may point into it).
  for (size_t i = 0; i < params.size(); ++i) {
    std::copy(w[i].begin(), w[i].end(), params[i].w.begin());
    std::copy(m[i].begin(), m[i].end(), m_[i].begin());
    std::copy(v[i].begin(), v[i].end(), v_[i].begin());
  }
  t_ = step;
  const auto it = h.find("extra");
  return it != h.end() && it->is_object() ? *it : nlohmann::json::object();
}

}  // namespace dsq::train
