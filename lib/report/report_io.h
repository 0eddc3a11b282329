// File helpers for the report module: JSON input with line/column errors, atomic text output,
// and markup escaping shared by the JUnit and HTML writers.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace dsq::report {

// Reads a JSON file. IoError when it cannot be read; FormatError naming line and column when it
// is not valid JSON: 'b.json': invalid JSON at line 3, column 7: <parser message>.
nlohmann::json read_json_file(const std::string& path);

// Writes `content` to `<path>.tmp`, then renames it over `path`; on failure the temporary file
// is removed and IoError is thrown, so `path` is never half-written.
void write_file_atomic(const std::string& path, std::string_view content);

// The JSON type of `j` as a word for messages: "string", "number", "object", "null", ...
std::string json_type_name(const nlohmann::json& j);

// Escapes text for XML 1.0 / HTML (polyglot): & < > " ' become entities; in attributes (attr =
// true) tab, newline and carriage return become character references so they survive attribute
// normalisation. Characters XML forbids (C0 controls other than tab/LF/CR) and invalid UTF-8
// bytes become U+FFFD, so the result is always well-formed.
std::string escape_markup(std::string_view s, bool attr = false);

// Fixed, locale-independent number formatting for tables and charts ("%.*g"); NaN -> "n/a".
std::string format_number(double v, int significant = 4);

}  // namespace dsq::report
