// Test support for the C++ binding's tests: check counters, exception expectations, a small
// JSON reader (for target/reference/manifest.json), files and temporary directories.
#ifndef CLOUDVOLUME_TEST_HARNESS_HPP
#define CLOUDVOLUME_TEST_HARNESS_HPP

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <typeinfo>
#include <string>
#include <utility>
#include <vector>

#include "cloudvolume.hpp"

namespace harness {

inline int checks = 0;
inline int failures = 0;

inline void fail(const char *file, int line, const std::string &what) {
    failures++;
    std::cerr << "FAIL " << file << ":" << line << ": " << what << std::endl;
}

}  // namespace harness

/// Count a check; on failure print the condition and the streamed message.
#define CHECK(cond, msg)                                                                         \
    do {                                                                                         \
        harness::checks++;                                                                       \
        if (!(cond)) {                                                                           \
            std::ostringstream os_;                                                              \
            os_ << #cond << ": " << msg;                                                         \
            harness::fail(__FILE__, __LINE__, os_.str());                                        \
        }                                                                                        \
    } while (0)

namespace harness {

/// Run `f`, which must throw exactly `E` (a cloudvolume::Error or subclass, not a further subclass) with `code`, a
/// non-empty message and every string of `needles` in it. Prints the message when it does.
inline bool verbose = true;  // print an "ok" line (with the message) for each expected exception

template <class E, class F, class... N>
void expect_throw(const char *file, int line, const std::string &what, F &&f, cv_status code, const N &...n) {
    const std::vector<std::string> needles{std::string(n)...};
    checks++;
    try {
        f();
    } catch (const cloudvolume::Error &e) {
        const std::string msg = e.what();
        std::string bad;
        if (typeid(e) != typeid(E))
            bad = std::string("threw the wrong class (") + typeid(e).name() + ", expected " + typeid(E).name() + ")";
        else if (e.code() != code)
            bad = "code " + std::to_string(e.code()) + " (" + e.code_name() + "), expected " + std::to_string(code);
        else if (msg.empty())
            bad = "empty message";
        for (const auto &n : needles)
            if (bad.empty() && msg.find(n) == std::string::npos) bad = "message lacks \"" + n + "\"";
        if (!bad.empty()) {
            fail(file, line, what + ": " + bad + "; message: " + msg);
        } else if (verbose) {
            std::cout << "ok   " << what << " -> " << e.code_name() << ": " << msg << "\n";
        }
        return;
    } catch (const std::exception &e) {
        fail(file, line, what + ": threw a non-cloudvolume exception: " + e.what());
        return;
    }
    fail(file, line, what + ": did not throw");
}

/// EXPECT_THROW(ExceptionClass, "what", expression, code, "needle", ...)
#define EXPECT_THROW(E, what, expr, ...) \
    harness::expect_throw<E>(__FILE__, __LINE__, what, [&]() { (void)(expr); }, __VA_ARGS__)

/// Print the summary line and give main's return value.
inline int finish(const char *name) {
    std::cout << name << ": " << checks << " checks, " << failures << " failures" << std::endl;
    return failures == 0 ? 0 : 1;
}

inline std::vector<unsigned char> read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    return std::vector<unsigned char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string &path, const std::string &bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    if (!out) throw std::runtime_error("cannot write " + path);
}

/// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
public:
    explicit TempDir(const std::string &tag) {
        std::string tmpl = (std::filesystem::temp_directory_path() / ("cv-cpp-" + tag + "-XXXXXX")).string();
        if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp " + tmpl + " failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;
    const std::string &path() const { return path_; }
    std::string url(const std::string &sub = "") const { return "file://" + path_ + (sub.empty() ? "" : "/" + sub); }

private:
    std::string path_;
};

// ------------------------------------------------------------------------------------------
// JSON (what manifest.json holds: objects, arrays, strings, numbers, booleans, null)
// ------------------------------------------------------------------------------------------

struct Json {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    bool boolean = false;
    std::string text;  // a number's literal text, or a string's value
    std::vector<Json> items;
    std::vector<std::pair<std::string, Json>> members;

    bool has(const std::string &key) const {
        for (const auto &m : members)
            if (m.first == key) return true;
        return false;
    }
    const Json &operator[](const std::string &key) const {
        static const Json null;
        for (const auto &m : members)
            if (m.first == key) return m.second;
        return null;
    }
    const Json &operator[](std::size_t i) const { return items.at(i); }
    std::size_t size() const { return kind == Array ? items.size() : members.size(); }
    std::int64_t i64() const {
        if (kind != Number) throw std::runtime_error("JSON: not a number");
        return std::stoll(text);
    }
    double num() const {
        if (kind != Number) throw std::runtime_error("JSON: not a number");
        return std::stod(text);
    }
    const std::string &str() const {
        if (kind != String) throw std::runtime_error("JSON: not a string");
        return text;
    }
    cloudvolume::Vec3i vec3i() const {
        if (kind != Array || items.size() != 3) throw std::runtime_error("JSON: not a triple");
        return {items[0].i64(), items[1].i64(), items[2].i64()};
    }
    cloudvolume::Vec3d vec3d() const {
        if (kind != Array || items.size() != 3) throw std::runtime_error("JSON: not a triple");
        return {items[0].num(), items[1].num(), items[2].num()};
    }
    /// Compact JSON text.
    std::string dump() const {
        switch (kind) {
            case Null: return "null";
            case Bool: return boolean ? "true" : "false";
            case Number: return text;
            case String: {
                std::string s = "\"";
                for (char c : text) {
                    if (c == '"' || c == '\\') s += '\\';
                    s += c;
                }
                return s + "\"";
            }
            case Array: {
                std::string s = "[";
                for (std::size_t i = 0; i < items.size(); i++) s += (i ? "," : "") + items[i].dump();
                return s + "]";
            }
            case Object: {
                std::string s = "{";
                for (std::size_t i = 0; i < members.size(); i++) {
                    Json k;
                    k.kind = String;
                    k.text = members[i].first;
                    s += (i ? "," : "") + k.dump() + ":" + members[i].second.dump();
                }
                return s + "}";
            }
        }
        return "";
    }
};

class JsonParser {
public:
    explicit JsonParser(const std::string &s) : s_(s) {}
    Json parse() {
        Json v = value();
        ws();
        if (i_ != s_.size()) error("trailing characters");
        return v;
    }

private:
    [[noreturn]] void error(const std::string &what) const {
        throw std::runtime_error("JSON: " + what + " at offset " + std::to_string(i_));
    }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) i_++;
    }
    bool lit(const char *w) {
        const std::size_t n = std::strlen(w);
        if (s_.compare(i_, n, w) == 0) {
            i_ += n;
            return true;
        }
        return false;
    }
    Json value() {
        ws();
        if (i_ >= s_.size()) error("unexpected end");
        Json v;
        const char c = s_[i_];
        if (c == '{') {
            v.kind = Json::Object;
            i_++;
            ws();
            if (i_ < s_.size() && s_[i_] == '}') {
                i_++;
                return v;
            }
            for (;;) {
                ws();
                std::string k = string();
                ws();
                if (i_ >= s_.size() || s_[i_] != ':') error("expected ':'");
                i_++;
                v.members.emplace_back(std::move(k), value());
                ws();
                if (i_ < s_.size() && s_[i_] == ',') {
                    i_++;
                    continue;
                }
                if (i_ < s_.size() && s_[i_] == '}') {
                    i_++;
                    return v;
                }
                error("expected ',' or '}'");
            }
        }
        if (c == '[') {
            v.kind = Json::Array;
            i_++;
            ws();
            if (i_ < s_.size() && s_[i_] == ']') {
                i_++;
                return v;
            }
            for (;;) {
                v.items.push_back(value());
                ws();
                if (i_ < s_.size() && s_[i_] == ',') {
                    i_++;
                    continue;
                }
                if (i_ < s_.size() && s_[i_] == ']') {
                    i_++;
                    return v;
                }
                error("expected ',' or ']'");
            }
        }
        if (c == '"') {
            v.kind = Json::String;
            v.text = string();
            return v;
        }
        if (lit("true")) {
            v.kind = Json::Bool;
            v.boolean = true;
            return v;
        }
        if (lit("false")) {
            v.kind = Json::Bool;
            return v;
        }
        if (lit("null")) return v;
        const std::size_t start = i_;
        while (i_ < s_.size() && std::strchr("+-0123456789.eE", s_[i_]) != nullptr) i_++;
        if (i_ == start) error("unexpected character");
        v.kind = Json::Number;
        v.text = s_.substr(start, i_ - start);
        return v;
    }
    std::string string() {
        if (i_ >= s_.size() || s_[i_] != '"') error("expected a string");
        i_++;
        std::string out;
        while (i_ < s_.size() && s_[i_] != '"') {
            char c = s_[i_++];
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i_ >= s_.size()) error("bad escape");
            c = s_[i_++];
            switch (c) {
                case 'n': out += '\n'; break;
                case 't': out += '\t'; break;
                case 'r': out += '\r'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'u': {
                    if (i_ + 4 > s_.size()) error("bad \\u escape");
                    const unsigned cp = static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
                    i_ += 4;
                    if (cp < 0x80) {
                        out += static_cast<char>(cp);
                    } else if (cp < 0x800) {
                        out += static_cast<char>(0xC0 | (cp >> 6));
                        out += static_cast<char>(0x80 | (cp & 0x3F));
                    } else {
                        out += static_cast<char>(0xE0 | (cp >> 12));
                        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                        out += static_cast<char>(0x80 | (cp & 0x3F));
                    }
                    break;
                }
                default: out += c;
            }
        }
        if (i_ >= s_.size()) error("unterminated string");
        i_++;
        return out;
    }

    const std::string &s_;
    std::size_t i_ = 0;
};

inline Json parse_json(const std::string &text) { return JsonParser(text).parse(); }

inline Json read_json(const std::string &path) {
    const auto bytes = read_file(path);
    return parse_json(std::string(bytes.begin(), bytes.end()));
}

/// The reference directory: argv[1], else $CV_REFERENCE_DIR. Empty when neither names a
/// directory with manifest.json.
inline std::string reference_dir(int argc, char **argv) {
    std::string d = argc > 1 ? argv[1] : "";
    if (d.empty()) {
        const char *e = std::getenv("CV_REFERENCE_DIR");
        d = e ? e : "";
    }
    if (d.empty() || !std::filesystem::exists(d + "/manifest.json")) return "";
    return d;
}

/// A .npy file: its dtype descr, shape and data bytes in C order (a Fortran-ordered 2-D array
/// is transposed back).
struct Npy {
    std::string descr;
    std::vector<std::size_t> shape;
    std::vector<unsigned char> data;  // C order
};

/// A .npy file: descr, shape and the data in C order (a Fortran-ordered 2-D array transposed).
inline Npy read_npy(const std::string &path) {
    const std::vector<unsigned char> b = harness::read_file(path);
    if (b.size() < 12 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not a .npy file");
    std::size_t hlen = 0, start = 0;
    if (b[6] == 1) {
        hlen = static_cast<std::size_t>(b[8]) | static_cast<std::size_t>(b[9]) << 8;
        start = 10;
    } else {
        hlen = static_cast<std::size_t>(b[8]) | static_cast<std::size_t>(b[9]) << 8 |
               static_cast<std::size_t>(b[10]) << 16 | static_cast<std::size_t>(b[11]) << 24;
        start = 12;
    }
    if (start + hlen > b.size()) throw std::runtime_error(path + ": header past the end");
    const std::string h(b.begin() + static_cast<std::ptrdiff_t>(start),
                        b.begin() + static_cast<std::ptrdiff_t>(start + hlen));
    auto field = [&](const std::string &k) {
        const std::size_t i = h.find("'" + k + "'");
        if (i == std::string::npos) throw std::runtime_error(path + ": no " + k);
        std::size_t j = i + k.size() + 3;
        while (j < h.size() && h[j] == ' ') j++;
        return h.substr(j);
    };
    Npy out;
    const std::string d = field("descr");
    out.descr = d.substr(1, d.find('\'', 1) - 1);
    const bool fortran = field("fortran_order").rfind("True", 0) == 0;
    const std::string s = field("shape");
    std::string num;
    for (std::size_t i = 1; i < s.size() && s[i] != ')'; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            num += s[i];
        } else if (!num.empty()) {
            out.shape.push_back(static_cast<std::size_t>(std::stoull(num)));
            num.clear();
        }
    }
    if (!num.empty()) out.shape.push_back(static_cast<std::size_t>(std::stoull(num)));
    out.data.assign(b.begin() + static_cast<std::ptrdiff_t>(start + hlen), b.end());
    if (fortran && out.shape.size() == 2) {
        const std::size_t rows = out.shape[0], cols = out.shape[1];
        const std::size_t item = rows * cols == 0 ? 1 : out.data.size() / (rows * cols);
        std::vector<unsigned char> c(out.data.size());
        for (std::size_t r = 0; r < rows; r++)
            for (std::size_t k = 0; k < cols; k++)
                std::memcpy(&c[(r * cols + k) * item], &out.data[(k * rows + r) * item], item);
        out.data = std::move(c);
    }
    return out;
}

/// When the reference layers are missing: a failure if CV_REQUIRE_REFERENCE=1, else a skip (77).
inline int missing_reference(const char *name, const std::string &tried) {
    const char *req = std::getenv("CV_REQUIRE_REFERENCE");
    if (req != nullptr && std::string(req) == "1") {
        std::cerr << name << ": CV_REQUIRE_REFERENCE=1 but no manifest.json under \"" << tried
                  << "\" (scripts/test.sh generates target/reference)" << std::endl;
        return 1;
    }
    std::cout << name << ": SKIP: no reference layers (pass the directory or set CV_REFERENCE_DIR)" << std::endl;
    return 77;
}

}  // namespace harness

#endif  // CLOUDVOLUME_TEST_HARNESS_HPP
