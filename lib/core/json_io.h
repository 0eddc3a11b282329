// Reading JSON from files dsq does not control (config.json, safetensors and .dsq headers,
// tokenizer.json, budgets, reports, statistics recipes, calibration .jsonl): one parser for all of
// them, so every rule holds everywhere.
//   - Nesting is limited to kMaxJsonDepth. nlohmann's parser is iterative, but copying, printing
//     and comparing a value recurse: a hostile file nested a million deep would overflow the
//     stack later, far from the reader. Limiting depth at parse time makes every later use safe,
//     and bounds a pretty-printed copy to kMaxJsonDepth x its size.
//   - Duplicate keys in an object are errors (nlohmann would silently keep the last).
//   - Errors are one line naming `where`, with at most a short excerpt of the input.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace dsq {

inline constexpr int kMaxJsonDepth = 64;

// Parses `text`; throws FormatError "'<where>': ..." for a syntax error, a duplicate key or
// nesting deeper than kMaxJsonDepth.
nlohmann::json parse_json(std::string_view text, const std::string& where);

// j.dump(indent) for files and reports dsq writes: strings that are not valid UTF-8 (a file name,
// a tensor name from a GGUF file) are written with U+FFFD in place of the bad bytes, where
// nlohmann's dump would throw.
std::string dump_json(const nlohmann::json& j, int indent = -1);

// Reads `v` as a T when it holds one: for an integral T only an integer in T's range (a float
// such as 1e300 is refused: converting it is undefined behaviour), for float and double any
// number within the type's finite range, otherwise whatever v.get<T>() accepts. False leaves
// *out unchanged, for the caller's error naming the file and field.
template <class T>
bool json_get(const nlohmann::json& v, T* out) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) return false;
    *out = v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
      *out = static_cast<T>(u);
    } else if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      if constexpr (std::is_signed_v<T>) {
        if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) return false;
      } else {
        if (i < 0 || static_cast<uint64_t>(i) > std::numeric_limits<T>::max()) return false;
      }
      *out = static_cast<T>(i);
    } else {
      return false;
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return false;
    const double d = v.get<double>();
    if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<T>::max()))
      return false;
    *out = static_cast<T>(d);
  } else {
    try {
      *out = v.get<T>();
    } catch (const nlohmann::json::exception&) {
      return false;
    }
  }
  return true;
}

// `j[key]` when `j` is an object holding `key`, else a null value: a reference into `j`, where
// `j.value(key, json())` copies the whole member (a .dsq header's tensor table, a tokenizer's
// vocabulary).
const nlohmann::json& json_member(const nlohmann::json& j, const char* key);

// A value as it may be quoted in an error message: its serialization, cut to `max` characters
// ("..." appended when cut).
std::string json_excerpt(const nlohmann::json& v, size_t max = 60);
// A name taken from an input (a tensor, a file) as the messages quote it: 'name', cut to `max`
// characters ("..." appended when cut).
std::string quoted_excerpt(std::string_view s, size_t max = 60);

}  // namespace dsq
