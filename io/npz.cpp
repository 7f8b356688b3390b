#include "io/npz.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <unordered_set>

#include "core/error.h"
#include "io/atomic_file.h"

namespace xgrad::io {

namespace {

std::uint32_t crc32(const unsigned char* data, std::size_t n, std::uint32_t crc = 0) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void put16(std::string& b, std::uint16_t v) { b.push_back(static_cast<char>(v & 0xFF)); b.push_back(static_cast<char>(v >> 8)); }
void put32(std::string& b, std::uint32_t v) { put16(b, static_cast<std::uint16_t>(v & 0xFFFF)); put16(b, static_cast<std::uint16_t>(v >> 16)); }

const char* npy_descr(DType d) {
  switch (d) {
    case DType::float32: return "<f4";
    case DType::float64: return "<f8";
    case DType::int64: return "<i8";
    case DType::bool_: return "|b1";
  }
  return "";
}

std::string npy_bytes(const Tensor& t) {
  std::string shape = "(";  // Python tuple syntax: "()", "(3,)", "(3, 4)"
  for (std::size_t i = 0; i < t.shape().size(); ++i)
    shape += std::to_string(t.shape()[i]) + (t.shape().size() == 1 ? "," : i + 1 < t.shape().size() ? ", " : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + npy_descr(t.dtype()) + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  put16(out, static_cast<std::uint16_t>(header.size()));
  out += header;
  const Tensor c = t.contiguous();
  out.append(static_cast<const char*>(c.raw_data()), static_cast<std::size_t>(c.numel()) * itemsize(c.dtype()));
  return out;
}

// Bounds-checked little-endian reads of a file held in memory. Every error names the file and says what is
// wrong with it: the archive, one of its members, or a member's .npy header.
struct Reader {
  const std::string& bytes;
  const std::string& path;
  ValueError bad(const std::string& why) const { return ValueError("checkpoint '" + path + "': " + why); }
  void need(std::uint64_t at, std::uint64_t n, const char* what) const {
    if (at > bytes.size() || n > bytes.size() - at)
      throw bad(std::string("bad archive: ") + what + " lies beyond the end of the file (truncated?)");
  }
  std::uint64_t u(std::uint64_t at, int width, const char* what) const {
    need(at, static_cast<std::uint64_t>(width), what);
    std::uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + static_cast<std::size_t>(i)]);
    return v;
  }
};

// Param names are text: UTF-8 (zip's flag 11, which Python sets for non-ASCII names) or ASCII, without NUL
// (which would also cut every error message that names the entry short).
bool is_name(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (!len || i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += len;
  }
  return true;
}

// A .npy header's value for `key` ("'descr': '<f4', ..."): the text after the colon, up to the next key.
std::string header_field(const std::string& header, const std::string& key, const std::function<ValueError(std::string)>& bad) {
  const auto k = header.find("'" + key + "'");
  const auto colon = k == std::string::npos ? k : header.find(':', k);
  if (colon == std::string::npos) throw bad("bad header: no '" + key + "' in " + header);
  return header.substr(colon + 1);
}

// Parses a .npy member (header dict, then C-order data) held in bytes[at, at + size).
Tensor parse_npy(const std::string& bytes, std::size_t at, std::size_t size, const std::string& path, const std::string& name) {
  auto bad = [&](const std::string& why) { return ValueError("checkpoint '" + path + "', entry '" + name + "': " + why); };
  if (size < 10 || bytes.compare(at, 6, "\x93NUMPY") != 0) throw bad("bad member: not a .npy array");
  const int major = static_cast<unsigned char>(bytes[at + 6]);
  if (major < 1 || major > 3) throw bad("bad header: .npy format version " + std::to_string(major) + " (1 to 3 are known)");
  const std::size_t len_width = major == 1 ? 2 : 4;
  if (size < 8 + len_width) throw bad("bad header: truncated");
  std::size_t header_len = 0;
  for (std::size_t i = len_width; i-- > 0;) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[at + 8 + i]);
  const std::size_t header_at = at + 8 + len_width;
  if (header_len > size - 8 - len_width) throw bad("bad header: longer than the member (truncated?)");
  const std::string header = bytes.substr(header_at, header_len);
  const std::string descr_field = header_field(header, "descr", bad);
  const auto q = descr_field.find('\'');
  const auto q_end = q == std::string::npos ? q : descr_field.find('\'', q + 1);
  if (q_end == std::string::npos) throw bad("bad header: the dtype is not a quoted string: " + header);
  const std::string descr = descr_field.substr(q + 1, q_end - q - 1);
  DType dtype;
  if (descr == "<f4") dtype = DType::float32;
  else if (descr == "<f8") dtype = DType::float64;
  else if (descr == "<i8") dtype = DType::int64;
  else if (descr == "|b1") dtype = DType::bool_;
  else throw bad("unsupported dtype '" + descr + "' (float32, float64, int64 and bool are)");
  const std::string order = header_field(header, "fortran_order", bad);
  const auto order_at = order.find_first_not_of(' ');
  if (order.compare(order_at == std::string::npos ? 0 : order_at, 4, "True") == 0)
    throw bad("Fortran-order arrays are not supported");
  if (order.compare(order_at == std::string::npos ? 0 : order_at, 5, "False") != 0) throw bad("bad header: fortran_order is neither True nor False");
  const std::string shape_text = header_field(header, "shape", bad);
  const auto open = shape_text.find('('), close = shape_text.find(')');
  if (open == std::string::npos || close == std::string::npos || close < open) throw bad("bad header: the shape is not a tuple: " + header);
  const std::string tuple = shape_text.substr(open, close - open + 1);
  const std::size_t data_at = header_at + header_len, stored = size - 8 - len_width - header_len;
  Shape shape;
  std::uint64_t count = 1;
  std::istringstream dims(tuple.substr(1, tuple.size() - 2));
  for (std::string d; std::getline(dims, d, ',');) {
    const auto first = d.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    std::size_t used = 0;
    std::int64_t dim = -1;
    try {
      dim = std::stoll(d.substr(first), &used);
    } catch (const std::exception&) {
    }
    if (dim < 0 || d.find_first_not_of(' ', first + used) != std::string::npos) throw bad("bad header: shape " + tuple);
    // The element count must fit the member's bytes: a corrupt shape must not size an allocation.
    if (dim > 0 && count > (stored / itemsize(dtype)) / static_cast<std::uint64_t>(dim))
      throw bad("bad member: shape " + tuple + " needs more data than the entry holds (truncated?)");
    count *= static_cast<std::uint64_t>(dim);
    shape.push_back(dim);
  }
  const std::size_t data_bytes = static_cast<std::size_t>(count) * itemsize(dtype);
  if (data_bytes != stored)
    throw bad("bad member: shape " + tuple + " of " + dtype_name(dtype) + " is " + std::to_string(data_bytes) + " bytes, the entry holds " +
              std::to_string(stored));
  Tensor t = Tensor::empty(dtype, shape);
  if (data_bytes) std::memcpy(t.raw_data(), bytes.data() + data_at, data_bytes);
  if (dtype == DType::bool_)
    for (std::size_t i = 0; i < data_bytes; ++i)
      if (static_cast<unsigned char>(bytes[data_at + i]) > 1) throw bad("bad member: a bool that is neither 0 nor 1");
  return t;
}

}  // namespace

void write_npz(const std::string& path, const NamedTensors& arrays) {
  std::string out, central;
  for (const auto& [name, tensor] : arrays) {
    if (!is_name(name)) {
      std::string shown;  // printable: a NUL would end the message there
      for (char c : name) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
      throw ValueError("write_npz: parameter name '" + shown + "' is not UTF-8 text without NUL ('" + path + "' left as it was)");
    }
    const std::string member = name + ".npy";
    // General-purpose flag bit 11: the name is UTF-8 (readers take it as cp437 otherwise).
    const std::uint16_t flags = std::any_of(member.begin(), member.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; }) ? 0x800 : 0;
    const std::string data = npy_bytes(tensor);
    if (data.size() >= 0xFFFFFFFFu || out.size() >= 0xFFFFFFFFu) throw ValueError("write_npz: arrays over 4 GiB are not supported");
    const std::uint32_t crc = crc32(reinterpret_cast<const unsigned char*>(data.data()), data.size());
    const auto offset = static_cast<std::uint32_t>(out.size());
    put32(out, 0x04034b50); put16(out, 20); put16(out, flags); put16(out, 0); put16(out, 0); put16(out, 0x21);
    put32(out, crc); put32(out, static_cast<std::uint32_t>(data.size())); put32(out, static_cast<std::uint32_t>(data.size()));
    put16(out, static_cast<std::uint16_t>(member.size())); put16(out, 0);
    out += member;
    out += data;
    put32(central, 0x02014b50); put16(central, 20); put16(central, 20); put16(central, flags); put16(central, 0);
    put16(central, 0); put16(central, 0x21); put32(central, crc); put32(central, static_cast<std::uint32_t>(data.size()));
    put32(central, static_cast<std::uint32_t>(data.size())); put16(central, static_cast<std::uint16_t>(member.size()));
    put16(central, 0); put16(central, 0); put16(central, 0); put16(central, 0); put32(central, 0); put32(central, offset);
    central += member;
  }
  // Without zip64 records, offsets, sizes and the entry count must fit their 32- and 16-bit fields.
  if (out.size() + central.size() >= 0xFFFFFFFFu || arrays.size() >= 0xFFFF)
    throw ValueError("write_npz: checkpoints over 4 GiB or 65535 arrays are not supported ('" + path + "' left as it was)");
  const auto cd_offset = static_cast<std::uint32_t>(out.size());
  out += central;
  put32(out, 0x06054b50); put16(out, 0); put16(out, 0);
  put16(out, static_cast<std::uint16_t>(arrays.size())); put16(out, static_cast<std::uint16_t>(arrays.size()));
  put32(out, static_cast<std::uint32_t>(central.size())); put32(out, cd_offset); put16(out, 0);

  write_file_atomically(path, out, "checkpoint");
}

NamedTensors read_npz(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ValueError("cannot open checkpoint '" + path + "'");
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw ValueError("cannot read checkpoint '" + path + "'");
  return read_npz_bytes(bytes, path);
}

NamedTensors read_npz_bytes(const std::string& bytes, const std::string& path) {
  const Reader r{bytes, path};
  // The end-of-central-directory record: the last signature within 64 KiB (its comment's limit) of the end.
  std::size_t eocd = std::string::npos;
  if (bytes.size() >= 22)
    for (std::size_t i = bytes.size() - 22;; --i) {
      if (r.u(i, 4, "the end record") == 0x06054b50) {
        eocd = i;
        break;
      }
      if (i == 0 || bytes.size() - i > 65557) break;
    }
  if (eocd == std::string::npos) throw r.bad("bad archive: not an .npz (zip) file, or truncated (no end record)");
  std::uint64_t entries = r.u(eocd + 10, 2, "the end record"), cd_at = r.u(eocd + 16, 4, "the end record");
  // zip64: the real values are in the zip64 end record, found through its locator (an archive of exactly
  // 65535 entries has none: Python writes zip64 records only beyond that).
  const bool zip64 = eocd >= 20 && r.u(eocd - 20, 4, "the zip64 locator") == 0x07064b50;
  if (cd_at == 0xFFFFFFFFu && !zip64) throw r.bad("bad archive: no zip64 locator");
  if (zip64 && (cd_at == 0xFFFFFFFFu || entries == 0xFFFF)) {
    const std::uint64_t record = r.u(eocd - 20 + 8, 8, "the zip64 locator");
    if (r.u(record, 4, "the zip64 end record") != 0x06064b50) throw r.bad("bad archive: no zip64 end record");
    entries = r.u(record + 32, 8, "the zip64 end record");
    cd_at = r.u(record + 48, 8, "the zip64 end record");
  }
  if (entries > bytes.size() / 46) throw r.bad("bad archive: " + std::to_string(entries) + " entries cannot fit the file");
  NamedTensors out;
  std::unordered_set<std::string> names;
  std::uint64_t stored_bytes = 0;  // all members' data: members that overlap could make it outgrow the file
  std::uint64_t at = cd_at;
  for (std::uint64_t e = 0; e < entries; ++e) {
    if (r.u(at, 4, "the central directory") != 0x02014b50) throw r.bad("bad archive: entry " + std::to_string(e) + " of the central directory");
    const auto method = r.u(at + 10, 2, "the central directory");
    const auto crc = static_cast<std::uint32_t>(r.u(at + 16, 4, "the central directory"));
    std::uint64_t size = r.u(at + 20, 4, "the central directory"), local = r.u(at + 42, 4, "the central directory");
    const std::uint64_t uncompressed32 = r.u(at + 24, 4, "the central directory");
    std::uint64_t uncompressed = uncompressed32;
    const std::uint64_t name_len = r.u(at + 28, 2, "the central directory"), extra_len = r.u(at + 30, 2, "the central directory"),
                        comment_len = r.u(at + 32, 2, "the central directory");
    r.need(at + 46, name_len + extra_len + comment_len, "an entry's name");
    const std::string member = bytes.substr(static_cast<std::size_t>(at + 46), static_cast<std::size_t>(name_len));
    if (!is_name(member)) throw r.bad("bad archive: entry " + std::to_string(e) + " has a name that is not UTF-8 text without NUL");
    std::string name = member;  // the param's name
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    // zip64 extended information: 8-byte values for the fields marked 0xFFFFFFFF, in the order uncompressed
    // size, compressed size, local header offset.
    const std::uint64_t extra_end = at + 46 + name_len + extra_len;
    for (std::uint64_t x = at + 46 + name_len; x + 4 <= extra_end;) {
      const auto id = r.u(x, 2, "an entry's extra field"), len = r.u(x + 2, 2, "an entry's extra field");
      if (x + 4 + len > extra_end) throw r.bad("bad archive: entry '" + name + "' has a malformed extra field");
      if (id == 0x0001) {
        std::uint64_t p = x + 4;
        auto next = [&] {
          if (p + 8 > x + 4 + len) throw r.bad("bad archive: entry '" + name + "' has a short zip64 field");
          const std::uint64_t v = r.u(p, 8, "an entry's zip64 field");
          p += 8;
          return v;
        };
        if (uncompressed32 == 0xFFFFFFFFu) uncompressed = next();
        if (size == 0xFFFFFFFFu) size = next();
        if (local == 0xFFFFFFFFu) local = next();
      }
      x += 4 + len;
    }
    if (method != 0) throw r.bad("entry '" + name + "': bad member: compressed entries are not supported (np.savez writes stored ones)");
    if (size != uncompressed) throw r.bad("entry '" + name + "': bad member: its stored and unpacked sizes differ");
    if (r.u(local, 4, "a local header") != 0x04034b50) throw r.bad("entry '" + name + "': bad archive: no local header where the directory says");
    const std::uint64_t local_name_len = r.u(local + 26, 2, "a local header");
    r.need(local + 30, local_name_len, "a local header's name");
    if (bytes.compare(static_cast<std::size_t>(local + 30), static_cast<std::size_t>(local_name_len), member) != 0)
      throw r.bad("entry '" + name + "': bad archive: its name in the directory and in its local header differ");
    const std::uint64_t data_at = local + 30 + local_name_len + r.u(local + 28, 2, "a local header");
    if (data_at > bytes.size() || size > bytes.size() - data_at)
      throw r.bad("entry '" + name + "': bad member: its data lies beyond the end of the file (truncated?)");
    const auto* data = reinterpret_cast<const unsigned char*>(bytes.data()) + data_at;
    if (crc32(data, static_cast<std::size_t>(size)) != crc) throw r.bad("entry '" + name + "': bad member: CRC-32 mismatch (the data is corrupt)");
    if (!names.insert(name).second) throw r.bad("bad archive: entry '" + name + "' appears twice");
    stored_bytes += size;
    if (stored_bytes > bytes.size()) throw r.bad("bad archive: entries overlap (their data adds up to more than the file)");
    out.emplace_back(name, parse_npy(bytes, static_cast<std::size_t>(data_at), static_cast<std::size_t>(size), path, name));
    at += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

}  // namespace xgrad::io
