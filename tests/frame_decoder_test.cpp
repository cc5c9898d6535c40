// The frame decoder (common/codec.hpp): decode_envelope checks a frame in
// one pass and the Reader walks it in place. It must refuse exactly what
// msgpack-c's unpacker (the decoder before it) refused, with the same
// reasons, and read back exactly what that unpacker built.
#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <algorithm>
#include <functional>
#include <random>
#include <string>

#include "common/codec.hpp"
#include "common/protocol.hpp"

namespace zgrid {
namespace {

// The decoder before this one: msgpack-c's object tree, the same limits.
Status Reference(const std::string& b, msgpack::object_handle* oh,
                 const DecodeLimits& lim = DecodeLimits()) {
  if (b.empty()) return Status::Protocol("empty message");
  try {
    std::size_t off = 0;
    msgpack::unpack_limit limit(lim.max_array, lim.max_map, lim.max_str, lim.max_bin, lim.max_bin,
                                lim.max_depth);
    *oh = msgpack::unpack(
        b.data(), b.size(), off,
        [](msgpack::type::object_type, std::size_t, void*) { return true; }, nullptr, limit);
    if (off != b.size()) return Status::Protocol("trailing bytes after the message");
  } catch (const msgpack::size_overflow&) {
    return Status::Protocol("message exceeds a decode limit");
  } catch (const msgpack::insufficient_bytes&) {
    return Status::Protocol("truncated message");
  } catch (const std::exception&) {
    return Status::Protocol("malformed msgpack");
  }
  const msgpack::object& root = oh->get();
  if (root.type != msgpack::type::ARRAY || root.via.array.size < 3)
    return Status::Protocol("message is not an array [version, type, corr, ...]");
  const msgpack::object* e = root.via.array.ptr;
  if (e[0].type != msgpack::type::POSITIVE_INTEGER ||
      e[1].type != msgpack::type::POSITIVE_INTEGER || e[2].type != msgpack::type::POSITIVE_INTEGER)
    return Status::Protocol("message header must be three unsigned integers");
  if (e[0].via.u64 > UINT32_MAX || e[1].via.u64 > UINT32_MAX)
    return Status::Protocol("bad message header");
  return Status::OK();
}

// Reads one value with `r` and checks it equals `o`, recursively.
void ExpectSame(Reader& r, const msgpack::object& o, const std::string& at) {
  SCOPED_TRACE(at);
  switch (o.type) {
    case msgpack::type::NIL: {
      ASSERT_EQ(r.peek(), Kind::kNil);
      bool nil = false;
      (void)r.bytes_or_nil(&nil);
      EXPECT_TRUE(nil);
      break;
    }
    case msgpack::type::BOOLEAN:
      ASSERT_EQ(r.peek(), Kind::kBool);
      EXPECT_EQ(r.boolean(), o.via.boolean);
      break;
    case msgpack::type::POSITIVE_INTEGER:
      ASSERT_EQ(r.peek(), Kind::kUint);
      EXPECT_EQ(r.u64(), o.via.u64);
      break;
    case msgpack::type::NEGATIVE_INTEGER:
      ASSERT_EQ(r.peek(), Kind::kNegInt);
      EXPECT_EQ(r.i64(), o.via.i64);
      break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      ASSERT_EQ(r.peek(), Kind::kFloat);
      if (o.via.f64 == o.via.f64)
        EXPECT_EQ(r.f64(), o.via.f64);
      else
        r.skip();
      break;
    case msgpack::type::STR:
      ASSERT_EQ(r.peek(), Kind::kStr);
      EXPECT_EQ(r.bytes(), std::string_view(o.via.str.ptr, o.via.str.size));
      break;
    case msgpack::type::BIN:
      ASSERT_EQ(r.peek(), Kind::kBin);
      EXPECT_EQ(r.bytes(), std::string_view(o.via.bin.ptr, o.via.bin.size));
      break;
    case msgpack::type::EXT:
      ASSERT_EQ(r.peek(), Kind::kExt);
      r.skip();
      break;
    case msgpack::type::ARRAY: {
      ASSERT_EQ(r.peek(), Kind::kArray);
      Reader a = r.array();
      ASSERT_EQ(a.remaining(), o.via.array.size);
      // Every other array is left half read: its parent steps over the rest.
      std::uint32_t n = at.size() % 2 ? o.via.array.size / 2 : o.via.array.size;
      for (std::uint32_t i = 0; i < n; ++i)
        ExpectSame(a, o.via.array.ptr[i], at + "/" + std::to_string(i));
      break;
    }
    case msgpack::type::MAP: {
      ASSERT_EQ(r.peek(), Kind::kMap);
      Reader m = r.map();
      ASSERT_EQ(m.remaining(), 2 * o.via.map.size);
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        ExpectSame(m, o.via.map.ptr[i].key, at + "/k" + std::to_string(i));
        ExpectSame(m, o.via.map.ptr[i].val, at + "/v" + std::to_string(i));
      }
      break;
    }
  }
  EXPECT_TRUE(r.ok()) << r.error();
}

// decode_envelope and the reference agree on `b`: the same verdict, and on
// success the same values.
void ExpectAgree(const std::string& b) {
  msgpack::object_handle oh;
  Status want = Reference(b, &oh);
  Envelope env;
  Status got = decode_envelope(b.data(), b.size(), &env);
  ASSERT_EQ(got.code(), want.code()) << got.ToString() << " vs " << want.ToString();
  ASSERT_EQ(got.message(), want.message());
  if (!got.ok()) return;
  const msgpack::object& root = oh.get();
  EXPECT_EQ(env.version, root.via.array.ptr[0].via.u64);
  EXPECT_EQ(env.type, root.via.array.ptr[1].via.u64);
  EXPECT_EQ(env.corr, root.via.array.ptr[2].via.u64);
  ASSERT_EQ(env.fields.remaining(), root.via.array.size - 3);
  for (std::uint32_t i = 3; i < root.via.array.size; ++i)
    ExpectSame(env.fields, root.via.array.ptr[i], std::to_string(i));
  EXPECT_TRUE(env.fields.at_end());
}

bool DecodeLimitsOk(const std::string& b) {
  Envelope env;
  return decode_envelope(b.data(), b.size(), &env).ok();
}

std::string Bytes(const zmq::message_t& m) {
  return std::string(m.data<char>(), m.size());
}

std::vector<std::string> Samples() {
  std::vector<std::string> out;
  const std::string big(300, 'z');  // Send's items are views: it must outlive s
  proto::Send s{"sess", "cli", 42, true, {{"u1", "p1"}, {"", big}}};
  out.push_back(Bytes(proto::encode_send(9, s)));
  Writer w = proto::begin(proto::kTasks, 0, 3);
  w.str("echo").array(2).array(2).u64(7).bin("x").array(2).u64(8).bin(std::string(70'000, 'y'));
  w.u64(5'000);
  out.push_back(Bytes(w.finish()));
  Writer r = proto::begin(proto::kResults, 0, 1);
  r.array(2).array(3).u64(7).nil().bin("a").array(3).u64(8).str("service_error").bin("bad");
  out.push_back(Bytes(r.finish()));
  proto::GridStatus g;
  g.nodes = 3, g.rate = 2.5, g.instance = "h1";
  out.push_back(Bytes(proto::encode_grid_status(4, g)));
  Writer x = proto::begin(proto::kHello, 1, 6);  // every kind, signed encodings of small values
  x.i64(-1).i64(-200).i64(-70'000).i64(INT64_MIN).f64(1.5).boolean(false);
  out.push_back(Bytes(x.finish()));
  return out;
}

TEST(FrameDecoder, AgreesWithMsgpackOnEveryMutationOfRealFrames) {
  std::mt19937 rng(7);
  for (const std::string& good : Samples()) {
    ExpectAgree(good);
    for (std::size_t cut = 0; cut < good.size(); cut += 1 + good.size() / 200)
      ExpectAgree(good.substr(0, cut));  // truncated anywhere
    ExpectAgree(good + '\0');            // trailing
    for (int i = 0; i < 3000; ++i) {
      std::string b = good;
      for (int k = 0, n = 1 + static_cast<int>(rng() % 3); k < n; ++k)
        b[rng() % std::min<std::size_t>(b.size(), 64)] = static_cast<char>(rng());
      ExpectAgree(b);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(FrameDecoder, AgreesWithMsgpackOnRandomBytes) {
  std::mt19937 rng(99);
  for (int i = 0; i < 100'000; ++i) {
    std::string b(1 + rng() % 48, '\0');
    for (auto& c : b) c = static_cast<char>(rng());
    if (i % 2) b[0] = static_cast<char>(0x93 + rng() % 12);  // an array, often
    ExpectAgree(b);
    if (HasFatalFailure()) return;
  }
}

TEST(FrameDecoder, LimitsAsMsgpackAppliesThem) {
  auto nest = [](int depth) {
    std::string b = "\x94\x01\x01\x01";
    for (int d = 1; d < depth; ++d) b += '\x91';
    b += '\x00';
    return b;
  };
  for (int d = 1; d <= 9; ++d) ExpectAgree(nest(d));
  EXPECT_TRUE(DecodeLimitsOk(nest(6)));
  EXPECT_FALSE(DecodeLimitsOk(nest(7)));
  // Counts over the limit are refused on their header, before truncation.
  auto arr32 = [](std::uint32_t n, char tag) {
    std::string b = "\x94\x01\x01\x01";
    b += tag;
    for (int i = 3; i >= 0; --i) b += static_cast<char>((n >> (8 * i)) & 0xff);
    return b;
  };
  for (std::uint32_t n : {65'552u, 65'553u, 1u << 31}) ExpectAgree(arr32(n, '\xdd'));
  for (std::uint32_t n : {256u, 257u}) ExpectAgree(arr32(n, '\xdf'));
  // A string over its limit counts only once its bytes are all there.
  DecodeLimits small;
  small.max_str = 4;
  std::string s5 = std::string("\x94\x01\x01\x01") + "\xa5" + "abcde";
  Envelope env;
  EXPECT_EQ(decode_envelope(s5.data(), s5.size(), &env, small).message(),
            "message exceeds a decode limit");
  EXPECT_EQ(decode_envelope(s5.data(), s5.size() - 1, &env, small).message(), "truncated message");
  std::string never = "\x94\x01\x01\x01\xc1";
  ExpectAgree(never);
}

// Views are into the frame: nothing is copied, and they live as long as it.
TEST(FrameDecoder, ViewsPointIntoTheFrame) {
  proto::Send s{"sess", "cli", 1, false, {{"ud", "payload-1"}, {"", "payload-2"}}};
  zmq::message_t m = proto::encode_send(3, s);
  Envelope env;
  ASSERT_TRUE(decode_envelope(m.data(), m.size(), &env).ok());
  proto::Send d;
  ASSERT_TRUE(proto::decode_send(env, &d).ok());
  const char* lo = m.data<char>();
  const char* hi = lo + m.size();
  for (std::string_view v : {d.session_id, d.client_id, d.items[0].user_data, d.items[1].payload}) {
    EXPECT_GE(v.data(), lo);
    EXPECT_LE(v.data() + v.size(), hi);
  }
  EXPECT_EQ(d.items[1].payload, "payload-2");
}

// A nested reader left half read: its parent reads on after the whole of it.
TEST(FrameDecoder, ParentStepsOverWhatAChildLeft) {
  Writer w = proto::begin(proto::kHello, 1, 3);
  w.array(3).array(2).u64(1).map(1).str("k").array(1).bin("deep").u64(2).str("tail");
  w.u64(77).str("last");
  zmq::message_t m = w.finish();
  Envelope env;
  ASSERT_TRUE(decode_envelope(m.data(), m.size(), &env).ok());
  Reader copy = env.fields;
  Reader outer = env.fields.array();
  Reader first = outer.array();
  EXPECT_EQ(first.u64(), 1u);  // its map left unread
  EXPECT_EQ(outer.u64(), 2u);
  EXPECT_EQ(env.fields.u64(), 77u);  // outer's "tail" left unread
  EXPECT_EQ(env.fields.bytes(), "last");
  EXPECT_TRUE(env.fields.at_end());
  EXPECT_TRUE(env.fields.ok());
  copy.skip();  // a copy reads from where the original was
  EXPECT_EQ(copy.u64(), 77u);
  EXPECT_EQ(copy.peek(), Kind::kStr);
  copy.skip();
  EXPECT_EQ(copy.peek(), Kind::kEnd);
  copy.skip();  // past the end: fails
  EXPECT_FALSE(copy.ok());
}

TEST(FrameDecoder, DecodeArrayForStoredValues) {
  Writer w;
  w.array(2).str("a").u64(5);
  std::string b = w.finish_string();
  Reader r;
  ASSERT_TRUE(decode_array(b.data(), b.size(), &r, DecodeLimits::unbounded()).ok());
  EXPECT_EQ(r.bytes(), "a");
  EXPECT_EQ(r.u64(), 5u);
  EXPECT_TRUE(r.at_end());
  std::string notarr = "\x05";
  EXPECT_EQ(decode_array(notarr.data(), notarr.size(), &r).message(), "expected an array");
  EXPECT_FALSE(decode_array(b.data(), b.size() - 1, &r).ok());
}

// Writer encodes every value as msgpack-c's packer does: the wire bytes
// did not change when it stopped going through the packer.
TEST(FrameDecoder, WriterWritesMsgpackCsBytes) {
  msgpack::sbuffer want;
  msgpack::packer<msgpack::sbuffer> pk(want);
  Writer w(0);
  std::vector<std::uint64_t> us = {
      0, 1, 127, 128, 255, 256, 65535, 65536, 0xffffffffull, 0x100000000ull, UINT64_MAX};
  for (std::uint64_t u : us) {
    pk.pack_uint64(u);
    w.u64(u);
  }
  std::vector<std::int64_t> is = {0,
                                  5,
                                  -1,
                                  -31,
                                  -32,
                                  -33,
                                  -127,
                                  -128,
                                  -129,
                                  -32768,
                                  -32769,
                                  INT32_MIN,
                                  std::int64_t{INT32_MIN} - 1,
                                  INT64_MIN,
                                  127,
                                  128,
                                  300,
                                  70'000,
                                  INT64_MAX};
  for (std::int64_t i : is) {
    pk.pack_int64(i);
    w.i64(i);
  }
  for (double d : {0.0, 3.0, -7.0, -1.5, 0.25, 1e300, -1e300, 1e19}) {
    pk.pack_double(d);
    w.f64(d);
  }
  pk.pack_true(), pk.pack_false(), pk.pack_nil();
  w.boolean(true).boolean(false).nil();
  for (std::size_t n : {0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70'000}) {
    std::string b(n, 'q');
    pk.pack_str(static_cast<std::uint32_t>(n));
    pk.pack_str_body(b.data(), static_cast<std::uint32_t>(n));
    pk.pack_bin(static_cast<std::uint32_t>(n));
    pk.pack_bin_body(b.data(), static_cast<std::uint32_t>(n));
    w.str(b).bin(b);
    if (n <= 70'000) {
      pk.pack_array(static_cast<std::uint32_t>(n));
      pk.pack_map(static_cast<std::uint32_t>(n));
      w.array(static_cast<std::uint32_t>(n)).map(static_cast<std::uint32_t>(n));
    }
  }
  std::string got = w.finish_string(), expect(want.data(), want.size());
  ASSERT_EQ(got.size(), expect.size());
  auto diff = std::mismatch(got.begin(), got.end(), expect.begin());
  EXPECT_EQ(diff.first - got.begin(), static_cast<std::ptrdiff_t>(got.size()))
      << "first difference at byte " << (diff.first - got.begin());
  zmq::message_t m = w.finish();
  EXPECT_TRUE(std::string(m.data<char>(), m.size()) == expect);
}

}  // namespace
}  // namespace zgrid
