// docs/protocol.md against the message table (common/messages.def): its
// "Message types" list, the "Fields" table and the "Field ranges" table say
// what the code does. A new message, a changed number, direction or reply,
// or a range changed on one side only fails here, and the failure prints the
// row the document should have.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/protocol.hpp"

namespace zgrid::proto {
namespace {

std::string ReadDoc() {
  std::ifstream f(std::string(ZGRID_SOURCE_DIR) + "/docs/protocol.md");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// The body rows of the first table under heading `heading`, split in cells.
std::vector<std::vector<std::string>> TableUnder(const std::string& doc,
                                                 const std::string& heading) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(doc);
  std::string line;
  bool in_section = false, in_table = false;
  int header_lines = 0;
  while (std::getline(in, line)) {
    if (!in_section) {
      in_section = line == heading;
      continue;
    }
    if (line.rfind("|", 0) != 0) {
      if (in_table) break;  // the table ended
      if (line.rfind("#", 0) == 0) break;
      continue;
    }
    in_table = true;
    if (header_lines < 2) {  // the header and the |---| line
      ++header_lines;
      continue;
    }
    std::vector<std::string> cells;
    std::size_t p = 1;  // after the leading '|'
    while (p < line.size()) {
      std::size_t q = line.find(" | ", p);
      if (q == std::string::npos) q = line.rfind('|');
      if (q < p) break;
      cells.push_back(Trim(line.substr(p, q - p)));
      p = q + (line.compare(q, 3, " | ") == 0 ? 3 : 1);
    }
    rows.push_back(std::move(cells));
  }
  return rows;
}

// `x` -> x; other text -> its first word.
std::string FirstToken(const std::string& cell) {
  if (!cell.empty() && cell[0] == '`') return cell.substr(1, cell.find('`', 1) - 1);
  return cell.substr(0, cell.find(' '));
}

// The backticked words of a cell, in order.
std::vector<std::string> Backticked(const std::string& s) {
  std::vector<std::string> out;
  for (std::size_t p = s.find('`'); p != std::string::npos; p = s.find('`', p + 1)) {
    std::size_t q = s.find('`', p + 1);
    if (q == std::string::npos) break;
    out.push_back(s.substr(p + 1, q - p - 1));
    p = q;
  }
  return out;
}

std::string ExpectedReply(const MessageInfo& m) {
  return m.role == Role::kReply ? "—" : std::string(m.reply);
}

std::string ExpectedRow(const MessageInfo& m) {
  std::string row = "| ";
  row.append(std::to_string(m.type)).append(" | `").append(m.name).append("` | ");
  row.append(direction_text(m.direction)).append(" | ");
  if (m.role == Role::kReply || m.reply == "none")
    row.append(ExpectedReply(m));
  else
    row.append("`").append(m.reply).append("`");
  return row.append(" |");
}

TEST(ProtocolTable, DocumentListsEveryMessageAsTheTableDoes) {
  std::string doc = ReadDoc();
  ASSERT_FALSE(doc.empty()) << "docs/protocol.md";
  auto rows = TableUnder(doc, "## Message types");
  ASSERT_FALSE(rows.empty()) << "no table under \"## Message types\"";
  std::map<std::string, const std::vector<std::string>*> by_number;
  std::vector<std::string> numbers;
  for (const auto& r : rows) {
    ASSERT_EQ(r.size(), 4u) << "a row of \"Message types\" without 4 cells";
    by_number[r[0]] = &r;
    numbers.push_back(r[0]);
  }
  std::vector<std::string> want_numbers;
  for (const MessageInfo& m : kMessages) {
    std::string want = ExpectedRow(m);  // a reply may add words after its first
    want_numbers.push_back(std::to_string(m.type));
    auto it = by_number.find(want_numbers.back());
    if (it == by_number.end()) {
      ADD_FAILURE() << "docs/protocol.md, \"Message types\", lacks " << want;
      continue;
    }
    const auto& r = *it->second;
    EXPECT_EQ(FirstToken(r[1]), m.name) << want;
    EXPECT_EQ(r[2], direction_text(m.direction)) << want;
    EXPECT_EQ(FirstToken(r[3]), ExpectedReply(m)) << want;
    by_number.erase(it);
  }
  for (const auto& [number, row] : by_number)
    ADD_FAILURE() << "docs/protocol.md, \"Message types\": message " << number
                  << " is no row of common/messages.def";
  if (by_number.empty() && numbers.size() == want_numbers.size()) {
    EXPECT_EQ(numbers, want_numbers) << "the rows in the table's order";
  }
}

TEST(ProtocolTable, FieldsTableHasEveryMessageAndNoOther) {
  auto rows = TableUnder(ReadDoc(), "## Fields");
  ASSERT_FALSE(rows.empty()) << "no table under \"## Fields\"";
  std::set<std::string> documented;
  for (const auto& r : rows) {
    ASSERT_FALSE(r.empty());
    for (const std::string& name : Backticked(r[0])) {
      EXPECT_NE(message_named(name), nullptr)
          << "\"Fields\" has a row for " << name << ", which is no message of common/messages.def";
      documented.insert(name);
    }
  }
  for (const MessageInfo& m : kMessages)
    EXPECT_TRUE(documented.count(std::string(m.name)))
        << "docs/protocol.md, \"Fields\": no row for " << m.name;
}

// "0", "65,536", "2⁶²", "2³²−1", "−1", "31,536,000,000": the number `s`
// starts with; `rest` gets what follows it.
std::optional<std::int64_t> ParseNumber(std::string s, std::string* rest = nullptr) {
  s = Trim(s);
  static const std::string kMinus = "\u2212";
  bool negative = false;
  if (s.rfind(kMinus, 0) == 0) {
    negative = true;
    s = s.substr(kMinus.size());
  } else if (s.rfind("-", 0) == 0) {
    negative = true;
    s = s.substr(1);
  }
  std::size_t p = 0;
  std::int64_t v = 0;
  bool digits = false;
  for (; p < s.size() && (std::isdigit(static_cast<unsigned char>(s[p])) || s[p] == ','); ++p)
    if (s[p] != ',') v = v * 10 + (s[p] - '0'), digits = true;
  if (!digits) return std::nullopt;
  static const std::vector<std::string> kSup = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
  int exponent = -1;
  for (bool more = true; more;) {
    more = false;
    for (int d = 0; d < 10; ++d)
      if (s.compare(p, kSup[d].size(), kSup[d]) == 0) {
        exponent = (exponent < 0 ? 0 : exponent * 10) + d;
        p += kSup[d].size();
        more = true;
      }
  }
  if (exponent >= 0) {
    std::int64_t base = v;
    v = 1;
    for (int i = 0; i < exponent; ++i) v *= base;
    if (s.compare(p, kMinus.size() + 1, kMinus + "1") == 0) {
      v -= 1;
      p += kMinus.size() + 1;
    }
  }
  if (rest) *rest = s.substr(p);
  return negative ? -v : v;
}

// "A .. B" or "A .. B (words)" -> {A, B}; anything else (prose, "1 .. 64
// printable characters") -> nullopt.
std::optional<std::pair<std::int64_t, std::int64_t>> ParseRange(const std::string& cell) {
  std::size_t dots = cell.find(" .. ");
  if (dots == std::string::npos) return std::nullopt;
  auto lo = ParseNumber(cell.substr(0, dots));
  std::string rest;
  auto hi = ParseNumber(cell.substr(dots + 4), &rest);
  if (!lo || !hi || !(rest.empty() || rest.rfind(" (", 0) == 0)) return std::nullopt;
  return std::make_pair(*lo, *hi);
}

// "`a`, `b` (`m1`, `m2` words); `c` (`m3`)" -> {(a,m1), (a,m2), (b,m1), ...}:
// fields outside parentheses, their messages inside.
std::vector<std::pair<std::string, std::string>> FieldMessages(const std::string& cell,
                                                               std::vector<std::string>* loose) {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::string> fields;
  int depth = 0;
  std::string group;
  for (std::size_t p = 0; p < cell.size(); ++p) {
    char ch = cell[p];
    if (ch == '(') {
      if (depth++ > 0) group += ch;
    } else if (ch == ')') {
      if (--depth > 0) {
        group += ch;
        continue;
      }
      for (const std::string& f : fields)
        for (const std::string& msg : Backticked(group)) out.emplace_back(f, msg);
      fields.clear();
      group.clear();
    } else if (depth > 0) {
      group += ch;
    } else if (ch == '`') {
      std::size_t q = cell.find('`', p + 1);
      fields.push_back(cell.substr(p + 1, q - p - 1));
      p = q;
    }
  }
  *loose = fields;  // fields no message follows ("`version`, `type`, `corr`")
  return out;
}

TEST(ProtocolTable, FieldRangesTableEqualsTheDecodersRanges) {
  auto rows = TableUnder(ReadDoc(), "## Field ranges");
  ASSERT_FALSE(rows.empty()) << "no table under \"## Field ranges\"";
  using Key = std::pair<std::string, std::string>;  // field, message
  std::map<Key, std::pair<std::int64_t, std::int64_t>> code, docs;
  for (const FieldRange* f : kFieldRanges) {
    std::istringstream msgs(f->messages);
    for (std::string m; msgs >> m;) {
      EXPECT_NE(message_named(m), nullptr) << f->field << ": " << m << " is no message";
      code[{f->field, m}] = {f->lo, f->hi};
    }
  }
  std::set<Key> prose;  // documented as unranged
  for (const auto& r : rows) {
    ASSERT_EQ(r.size(), 2u);
    std::vector<std::string> loose;
    auto pairs = FieldMessages(r[0], &loose);
    auto range = ParseRange(r[1]);
    if (!range) {
      for (const Key& k : pairs) prose.insert(k);
      continue;
    }
    EXPECT_TRUE(loose.empty()) << "fields without a message in a ranged row: " << r[0];
    for (const Key& k : pairs) docs[k] = *range;
  }
  for (const auto& [k, range] : code) {
    auto it = docs.find(k);
    std::string want = "`" + k.first + "` (`" + k.second + "`): " + std::to_string(range.first) +
                       " .. " + std::to_string(range.second);
    if (it == docs.end()) {
      ADD_FAILURE() << "docs/protocol.md, \"Field ranges\", lacks " << want;
      continue;
    }
    EXPECT_EQ(it->second, range) << "docs/protocol.md, \"Field ranges\", should say " << want;
  }
  for (const auto& [k, range] : docs)
    EXPECT_TRUE(code.count(k)) << "docs/protocol.md, \"Field ranges\": `" << k.first << "` (`"
                               << k.second << "`) has no ZG_RANGE row in common/messages.def";
  for (const Key& k : prose)
    EXPECT_FALSE(code.count(k)) << "`" << k.first << "` (`" << k.second
                                << "`) is ranged in the code but documented as unranged";
}

// The table is what the wire numbers and names are: a few fixed points.
TEST(ProtocolTable, NumbersAndNamesComeFromTheTable) {
  EXPECT_EQ(kHello, 1u);
  EXPECT_EQ(kSubmit, 17u);
  EXPECT_EQ(kRegister, 20u);
  EXPECT_EQ(kError, 199u);
  EXPECT_STREQ(type_name(kCreateSession), "create_session");
  EXPECT_STREQ(type_name(kEndSession), "end_session");
  EXPECT_STREQ(type_name(3000), "unknown");
  EXPECT_STREQ(type_name(0), "unknown");
  ASSERT_NE(message_named("send"), nullptr);
  EXPECT_EQ(message_named("send")->reply, "ack");
  EXPECT_EQ(message_info(kTasks)->direction, Direction::kHeadToNode);
  // Every number below the limit has a row or none; none above it.
  for (std::uint32_t n = 0; n < kTypeLimit; ++n) {
    bool listed = false;
    for (const MessageInfo& m : kMessages) listed = listed || m.type == n;
    EXPECT_EQ(message_info(n) != nullptr, listed) << n;
    if (listed) {
      EXPECT_EQ(message_info(n)->type, n);
    }
  }
  EXPECT_EQ(message_info(kTypeLimit), nullptr);
}

}  // namespace
}  // namespace zgrid::proto
