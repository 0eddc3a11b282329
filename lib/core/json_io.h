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

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace dsq {

inline constexpr int kMaxJsonDepth = 64;

// Parses `text`; throws FormatError "'<where>': ..." for a syntax error, a duplicate key or
// nesting deeper than kMaxJsonDepth.
nlohmann::json parse_json(std::string_view text, const std::string& where);

// A value as it may be quoted in an error message: its serialization, cut to `max` characters
// ("..." appended when cut).
std::string json_excerpt(const nlohmann::json& v, size_t max = 60);
// A name taken from an input (a tensor, a file) as the messages quote it: 'name', cut to `max`
// characters ("..." appended when cut).
std::string quoted_excerpt(std::string_view s, size_t max = 60);

}  // namespace dsq
