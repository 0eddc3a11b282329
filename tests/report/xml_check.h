// A small, strict XML 1.0 well-formedness parser for tests: JUnit files and the (polyglot XHTML)
// HTML report are parsed into a tree so tests can assert on real structure, not substrings.
// Checks: one root element, balanced and properly nested tags, quoted attributes without '<',
// no duplicate attributes, only the five predefined entities or numeric character references,
// no characters XML forbids, valid UTF-8. Supports the XML declaration, one DOCTYPE without an
// internal subset, comments, processing instructions and CDATA sections.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace dsq::testing {

struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attrs;  // entity-decoded values
  std::vector<std::unique_ptr<XmlNode>> children;
  std::string text;  // decoded character data directly inside this element

  // Every descendant (self excluded) with this element name, in document order.
  void find_all(const std::string& n, std::vector<const XmlNode*>& out) const {
    for (const auto& c : children) {
      if (c->name == n) out.push_back(c.get());
      c->find_all(n, out);
    }
  }
  std::vector<const XmlNode*> all(const std::string& n) const {
    std::vector<const XmlNode*> out;
    find_all(n, out);
    return out;
  }
  const XmlNode* child(const std::string& n) const {
    for (const auto& c : children)
      if (c->name == n) return c.get();
    return nullptr;
  }
  std::string attr(const std::string& k) const {
    const auto it = attrs.find(k);
    return it == attrs.end() ? "" : it->second;
  }
};

class XmlParser {
 public:
  // Parses a whole document; throws std::runtime_error("offset N: ...") when it is not
  // well-formed. Returns the root element.
  static std::unique_ptr<XmlNode> parse(const std::string& doc) {
    XmlParser p(doc);
    return p.document();
  }

 private:
  explicit XmlParser(const std::string& s) : s_(s) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("offset " + std::to_string(i_) + ": " + what);
  }
  bool starts(const char* t) const { return s_.compare(i_, std::char_traits<char>::length(t), t) == 0; }
  void expect(const char* t) {
    if (!starts(t)) fail(std::string("expected '") + t + "'");
    i_ += std::char_traits<char>::length(t);
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  static bool name_start(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || c >= 0x80;
  }
  static bool name_char(unsigned char c) {
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
  }
  std::string name() {
    if (i_ >= s_.size() || !name_start(static_cast<unsigned char>(s_[i_]))) fail("expected a name");
    const size_t b = i_;
    while (i_ < s_.size() && name_char(static_cast<unsigned char>(s_[i_]))) ++i_;
    return s_.substr(b, i_ - b);
  }
  static void put_utf8(std::string& out, uint32_t cp) {
    const int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static constexpr unsigned char kLead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    char buf[4];
    for (int k = n - 1; k > 0; --k, cp >>= 6) buf[k] = static_cast<char>(0x80 | (cp & 0x3F));
    buf[0] = static_cast<char>(n == 1 ? cp : kLead[n] | cp);
    out.append(buf, static_cast<size_t>(n));
  }
  static bool xml_char(uint32_t cp) {
    return cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
  }
  // Copies one (validated) UTF-8 character from the input to `out`.
  void character(std::string& out) {
    const auto c = static_cast<unsigned char>(s_[i_]);
    int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i_ + n > s_.size()) fail("invalid UTF-8");
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s_[i_ + k]);
      if ((d & 0xC0) != 0x80) fail("invalid UTF-8");
      cp = (cp << 6) | (d & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || !xml_char(cp)) fail("character not allowed in XML");
    out.append(s_, i_, n);
    i_ += n;
  }
  void reference(std::string& out) {
    expect("&");
    const size_t semi = s_.find(';', i_);
    if (semi == std::string::npos || semi - i_ > 10) fail("unterminated entity reference");
    const std::string ref = s_.substr(i_, semi - i_);
    i_ = semi + 1;
    static const std::map<std::string, char> kNamed = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    if (const auto it = kNamed.find(ref); it != kNamed.end()) {
      out += it->second;
      return;
    }
    if (ref.size() < 2 || ref[0] != '#') fail("undefined entity '&" + ref + ";'");
    const bool hex = ref[1] == 'x';
    const std::string digits = ref.substr(hex ? 2 : 1);
    if (digits.empty() || digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") !=
                              std::string::npos)
      fail("bad character reference '&" + ref + ";'");
    const uint32_t cp = static_cast<uint32_t>(std::stoul(digits, nullptr, hex ? 16 : 10));
    if (!xml_char(cp)) fail("character reference to a forbidden character");
    put_utf8(out, cp);
  }
  // Skips one comment or processing instruction at the cursor; false when there is none.
  bool skip_comment_or_pi() {
    const bool comment = starts("<!--");
    if (!comment && !starts("<?")) return false;
    const char* end = comment ? "-->" : "?>";
    const size_t e = s_.find(end, i_ + (comment ? 4 : 2));
    if (e == std::string::npos) fail(comment ? "unterminated comment" : "unterminated PI");
    i_ = e + std::char_traits<char>::length(end);
    return true;
  }
  void misc() {  // comments, PIs and whitespace between top-level items
    do skip_ws();
    while (skip_comment_or_pi());
  }
  std::unique_ptr<XmlNode> document() {
    if (starts("\xEF\xBB\xBF")) i_ += 3;
    misc();
    if (starts("<!DOCTYPE")) {
      const size_t e = s_.find('>', i_);
      if (e == std::string::npos || s_.substr(i_, e - i_).find('[') != std::string::npos)
        fail("unsupported DOCTYPE");
      i_ = e + 1;
      misc();
    }
    if (!starts("<")) fail("expected the root element");
    auto root = element();
    misc();
    if (i_ != s_.size()) fail("content after the root element");
    return root;
  }
  std::unique_ptr<XmlNode> element() {
    expect("<");
    auto node = std::make_unique<XmlNode>();
    node->name = name();
    for (;;) {
      const size_t before = i_;
      skip_ws();
      if (starts("/>")) {
        i_ += 2;
        return node;
      }
      if (starts(">")) {
        ++i_;
        break;
      }
      if (i_ == before) fail("expected whitespace before an attribute");
      const std::string key = name();
      skip_ws();
      expect("=");
      skip_ws();
      if (i_ >= s_.size() || (s_[i_] != '"' && s_[i_] != '\'')) fail("unquoted attribute value");
      const char q = s_[i_++];
      std::string value;
      while (i_ < s_.size() && s_[i_] != q) {
        if (s_[i_] == '<') fail("'<' in attribute value");
        if (s_[i_] == '&') reference(value);
        else character(value);
      }
      expect(q == '"' ? "\"" : "'");
      if (!node->attrs.emplace(key, value).second) fail("duplicate attribute '" + key + "'");
    }
    for (;;) {
      if (i_ >= s_.size()) fail("unclosed element <" + node->name + ">");
      if (starts("</")) {
        i_ += 2;
        const std::string end = name();
        if (end != node->name) fail("</" + end + "> closes <" + node->name + ">");
        skip_ws();
        expect(">");
        return node;
      }
      if (skip_comment_or_pi()) {
        continue;
      } else if (starts("<![CDATA[")) {
        const size_t e = s_.find("]]>", i_ + 9);
        if (e == std::string::npos) fail("unterminated CDATA");
        node->text += s_.substr(i_ + 9, e - i_ - 9);
        i_ = e + 3;
      } else if (starts("<")) {
        node->children.push_back(element());
      } else if (s_[i_] == '&') {
        reference(node->text);
      } else {
        if (starts("]]>")) fail("']]>' in character data");
        character(node->text);
      }
    }
  }

  const std::string& s_;
  size_t i_ = 0;
};

}  // namespace dsq::testing
