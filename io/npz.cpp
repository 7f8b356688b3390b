#include "io/npz.h"

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "core/error.h"

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

struct Reader {
  const std::string& bytes;
  const std::string& path;
  void need(std::size_t at, std::size_t n) const {
    if (at + n > bytes.size() || at + n < at) throw ValueError("checkpoint '" + path + "' is truncated or corrupt");
  }
  std::uint64_t u(std::size_t at, int width) const {
    need(at, static_cast<std::size_t>(width));
    std::uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + static_cast<std::size_t>(i)]);
    return v;
  }
};

// Parses a .npy member: header dict, then C-order data.
Tensor parse_npy(const std::string& bytes, std::size_t at, std::size_t size, const std::string& path, const std::string& name) {
  const Reader r{bytes, path};
  auto bad = [&](const std::string& why) { return ValueError("checkpoint '" + path + "', entry '" + name + "': " + why); };
  r.need(at, size);
  if (size < 10 || bytes.compare(at, 6, "\x93NUMPY") != 0) throw bad("not a .npy array");
  const int major = static_cast<unsigned char>(bytes[at + 6]);
  const std::size_t header_len = major == 1 ? r.u(at + 8, 2) : r.u(at + 8, 4);
  const std::size_t header_at = at + (major == 1 ? 10 : 12);
  if (header_at + header_len > at + size) throw bad("truncated header");
  const std::string header = bytes.substr(header_at, header_len);
  auto field = [&](const std::string& key) {
    const auto k = header.find("'" + key + "'");
    if (k == std::string::npos) throw bad("header without '" + key + "'");
    return header.substr(header.find(':', k) + 1);
  };
  const std::string descr_field = field("descr");
  const auto q = descr_field.find('\''), q_end = descr_field.find('\'', q + 1);
  const std::string descr = descr_field.substr(q + 1, q_end - q - 1);
  DType dtype;
  if (descr == "<f4") dtype = DType::float32;
  else if (descr == "<f8") dtype = DType::float64;
  else if (descr == "<i8") dtype = DType::int64;
  else if (descr == "|b1") dtype = DType::bool_;
  else throw bad("unsupported dtype '" + descr + "' (float32, float64, int64 and bool are)");
  if (field("fortran_order").find("True") < 3) throw bad("Fortran-order arrays are not supported");
  const std::string shape_text = field("shape");
  Shape shape;
  const auto open = shape_text.find('('), close = shape_text.find(')');
  std::istringstream dims(shape_text.substr(open + 1, close - open - 1));
  std::uint64_t count = 1;
  for (std::string d; std::getline(dims, d, ',');) {
    if (d.find_first_not_of(' ') == std::string::npos) continue;
    std::int64_t dim = -1;
    try {
      dim = std::stoll(d);
    } catch (const std::exception&) {
    }
    // The element count must fit the member's bytes: a corrupt shape must not size an allocation.
    if (dim < 0 || (dim > 0 && count > (size / itemsize(dtype)) / static_cast<std::uint64_t>(dim)))
      throw bad("shape " + shape_text.substr(open, close - open + 1) + " does not fit the stored data");
    count *= static_cast<std::uint64_t>(dim);
    shape.push_back(dim);
  }
  const std::size_t data_bytes = static_cast<std::size_t>(count) * itemsize(dtype);
  const std::size_t data_at = header_at + header_len;
  if (data_at + data_bytes > at + size) throw bad("truncated data");
  Tensor t = Tensor::empty(dtype, shape);
  std::memcpy(t.raw_data(), bytes.data() + data_at, data_bytes);
  return t;
}

}  // namespace

void write_npz(const std::string& path, const NamedTensors& arrays) {
  std::string out, central;
  for (const auto& [name, tensor] : arrays) {
    const std::string member = name + ".npy";
    const std::string data = npy_bytes(tensor);
    if (data.size() >= 0xFFFFFFFFu || out.size() >= 0xFFFFFFFFu) throw ValueError("write_npz: arrays over 4 GiB are not supported");
    const std::uint32_t crc = crc32(reinterpret_cast<const unsigned char*>(data.data()), data.size());
    const auto offset = static_cast<std::uint32_t>(out.size());
    put32(out, 0x04034b50); put16(out, 20); put16(out, 0); put16(out, 0); put16(out, 0); put16(out, 0x21);
    put32(out, crc); put32(out, static_cast<std::uint32_t>(data.size())); put32(out, static_cast<std::uint32_t>(data.size()));
    put16(out, static_cast<std::uint16_t>(member.size())); put16(out, 0);
    out += member;
    out += data;
    put32(central, 0x02014b50); put16(central, 20); put16(central, 20); put16(central, 0); put16(central, 0);
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

  const std::string tmp = path + ".tmp-xgrad";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw ValueError("cannot write checkpoint '" + path + "'");
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    f.close();  // the last buffered bytes are written here: a full disk shows up now, before the rename
    if (!f) {
      std::remove(tmp.c_str());
      throw ValueError("cannot write checkpoint '" + path + "'");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw ValueError("cannot write checkpoint '" + path + "'");
  }
}

NamedTensors read_npz(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ValueError("cannot open checkpoint '" + path + "'");
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const Reader r{bytes, path};
  // The end-of-central-directory record: the last signature within 64 KiB of the end.
  std::size_t eocd = std::string::npos;
  for (std::size_t i = bytes.size() >= 22 ? bytes.size() - 22 : 0; bytes.size() >= 22; --i) {
    if (r.u(i, 4) == 0x06054b50) { eocd = i; break; }
    if (i == 0 || bytes.size() - i > 65557) break;
  }
  if (eocd == std::string::npos) throw ValueError("checkpoint '" + path + "' is not an .npz (zip) file, or it is truncated");
  std::uint64_t entries = r.u(eocd + 10, 2), cd_at = r.u(eocd + 16, 4);
  if (cd_at == 0xFFFFFFFFu || entries == 0xFFFF) {  // zip64: the real values are in the zip64 end record
    const std::size_t locator = eocd - 20;
    if (eocd < 20 || r.u(locator, 4) != 0x07064b50) throw ValueError("checkpoint '" + path + "' is corrupt (zip64 locator)");
    const std::size_t record = r.u(locator + 8, 8);
    entries = r.u(record + 32, 8);
    cd_at = r.u(record + 48, 8);
  }
  NamedTensors out;
  std::size_t at = cd_at;
  for (std::uint64_t e = 0; e < entries; ++e) {
    if (r.u(at, 4) != 0x02014b50) throw ValueError("checkpoint '" + path + "' is corrupt (central directory)");
    const auto method = r.u(at + 10, 2);
    std::uint64_t size = r.u(at + 20, 4), local = r.u(at + 42, 4);
    const std::size_t name_len = r.u(at + 28, 2), extra_len = r.u(at + 30, 2), comment_len = r.u(at + 32, 2);
    r.need(at + 46, name_len + extra_len);
    std::string name = bytes.substr(at + 46, name_len);
    // zip64 extended information: 8-byte sizes and offset for the fields marked 0xFFFFFFFF.
    for (std::size_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const auto id = r.u(x, 2), len = r.u(x + 2, 2);
      if (id == 0x0001) {
        std::size_t p = x + 4;
        if (r.u(at + 24, 4) == 0xFFFFFFFFu) p += 8;  // uncompressed size first
        if (size == 0xFFFFFFFFu) { size = r.u(p, 8); p += 8; }
        if (local == 0xFFFFFFFFu) local = r.u(p, 8);
        if (r.u(at + 24, 4) == 0xFFFFFFFFu) size = r.u(x + 4, 8);
      }
      x += 4 + len;
    }
    if (method != 0) throw ValueError("checkpoint '" + path + "', entry '" + name + "': compressed entries are not supported");
    if (r.u(local, 4) != 0x04034b50) throw ValueError("checkpoint '" + path + "' is corrupt (local header)");
    const std::size_t data_at = local + 30 + r.u(local + 26, 2) + r.u(local + 28, 2);
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    out.emplace_back(name, parse_npy(bytes, data_at, size, path, name));
    at += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

}  // namespace xgrad::io
