#include "tools/quantize_flags.h"

#include <algorithm>

#include "lib/core/error.h"

namespace dsq::tools {

void MethodFlags::bind(CLI::App& sub) {
  for (const jobs::OptionSpec* spec : jobs::all_method_options()) {
    auto slot = std::make_unique<Slot>();
    slot->spec = spec;
    const std::string flag(spec->flag), help(spec->help);
    using K = jobs::OptionKind;
    switch (spec->kind) {
      case K::kFlag: slot->opt = sub.add_flag(flag, slot->flag, help); break;
      case K::kInt: slot->opt = sub.add_option(flag, slot->i, help); break;
      case K::kReal: slot->opt = sub.add_option(flag, slot->d, help); break;
      case K::kPath: slot->opt = sub.add_option(flag, slot->s, help); break;
      case K::kPaths: slot->opt = sub.add_option(flag, slot->list, help); break;
    }
    if (spec->kind == K::kInt || spec->kind == K::kReal)
      slot->opt->default_str(jobs::option_default_text(*spec));
    if (!spec->group.empty()) slot->opt->group(std::string(spec->group));
    slots_.push_back(std::move(slot));
  }
}

void MethodFlags::apply(jobs::QuantizeOptions& q) const {
  const jobs::QuantMethod& m = jobs::find_quant_method(q.method);
  const auto& runtime = jobs::pipeline_runtime_options();
  for (const auto& slot : slots_) {
    if (slot->opt->count() == 0) continue;
    const jobs::OptionSpec* spec = slot->spec;
    nlohmann::json v;
    using K = jobs::OptionKind;
    switch (spec->kind) {
      case K::kFlag: v = !spec->inverted; break;
      case K::kInt: v = slot->i; break;
      case K::kReal: v = slot->d; break;
      case K::kPath: v = slot->s; break;
      case K::kPaths: v = slot->list; break;
    }
    const std::string key(spec->key);
    if (std::find(m.options.begin(), m.options.end(), spec) != m.options.end())
      q.method_options[key] = v;
    else if (m.calibrated && std::find(runtime.begin(), runtime.end(), spec) != runtime.end())
      q.method_runtime[key] = v;
    else
      throw UsageError(std::string(spec->flag) + " does not apply to --method " + q.method);
  }
}

}  // namespace dsq::tools
