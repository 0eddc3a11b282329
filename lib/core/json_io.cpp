#include "lib/core/json_io.h"

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include "lib/core/error.h"

namespace dsq {

using nlohmann::json;

std::string dump_json(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

json parse_json(std::string_view text, const std::string& where) {
  // One set of keys per open object; a repeated key would silently win in nlohmann::json.
  std::vector<std::set<std::string>> open_objects;
  bool too_deep = false;
  auto cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start || ev == json::parse_event_t::array_start) {
      if (depth >= kMaxJsonDepth) {
        too_deep = true;
        throw FormatError("'" + where + "': JSON nested deeper than " +
                          std::to_string(kMaxJsonDepth) + " levels");
      }
      if (ev == json::parse_event_t::object_start) open_objects.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (ev == json::parse_event_t::key && !open_objects.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second)
        throw FormatError("'" + where + "': duplicate JSON key '" + key.substr(0, 60) + "'");
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), cb);
  } catch (const json::parse_error& e) {
    // e.byte is 1-based and points just past the offending character.
    const size_t end = std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
    int64_t line = 1, col = 1;
    for (size_t i = 0; i < end; ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 2: " prefix.
    if (const size_t p = what.find(": "); p != std::string::npos && what.rfind("[json", 0) == 0)
      what = what.substr(p + 2);
    if (what.size() > 160) what = what.substr(0, 160) + "...";
    throw FormatError(strprintf("'%s': invalid JSON at line %lld, column %lld: %s", where.c_str(),
                                static_cast<long long>(line), static_cast<long long>(col),
                                what.c_str()));
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (what.size() > 160) what = what.substr(0, 160) + "...";
    throw FormatError("'" + where + "': invalid JSON: " + what);
  }
}

std::string quoted_excerpt(std::string_view s, size_t max) {
  return "'" + std::string(utf8_prefix(s, max)) + (s.size() > max ? "...'" : "'");
}

const json& json_member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  const auto it = j.find(key);
  return it != j.end() ? *it : kNull;
}

std::string json_excerpt(const json& v, size_t max) {
  const std::string s = dump_json(v);
  return s.size() > max ? std::string(utf8_prefix(s, max)) + "..." : s;
}

}  // namespace dsq
