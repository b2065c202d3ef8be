#include "engine/io/torch_pickle.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace la3 {

const char* torch_storage_type_name(TorchStorageType type) {
  switch (type) {
    case TorchStorageType::kFloat: return "torch.FloatStorage";
    case TorchStorageType::kHalf: return "torch.HalfStorage";
    case TorchStorageType::kBFloat16: return "torch.BFloat16Storage";
  }
  return "?";
}

size_t torch_storage_element_size(TorchStorageType type) { return type == TorchStorageType::kFloat ? 4 : 2; }

namespace {

// No tensor in a checkpoint comes near 2^40 elements; a bound that keeps every product of a
// size and a stride inside int64_t.
constexpr int64_t kMaxExtent = int64_t{1} << 40;

enum class Kind : uint8_t { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kGlobal, kStorage, kTensor };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kGlobal: return "global";
    case Kind::kStorage: return "storage";
    case Kind::kTensor: return "tensor";
  }
  return "?";
}

// The whitelist. Recognised names only: nothing is ever imported or executed.
enum class Global : uint8_t { kOrderedDict, kRebuildTensorV2, kRebuildParameter, kFloatStorage, kHalfStorage, kBFloat16Storage };

struct AllowedGlobal {
  const char* module;
  const char* name;
  Global id;
};
constexpr AllowedGlobal kAllowedGlobals[] = {
    {"collections", "OrderedDict", Global::kOrderedDict},
    {"torch._utils", "_rebuild_tensor_v2", Global::kRebuildTensorV2},
    {"torch._utils", "_rebuild_parameter", Global::kRebuildParameter},
    {"torch", "FloatStorage", Global::kFloatStorage},
    {"torch", "HalfStorage", Global::kHalfStorage},
    {"torch", "BFloat16Storage", Global::kBFloat16Storage},
};

// Every value the machine builds. Containers refer to other objects by index into the arena.
struct Object {
  Kind kind = Kind::kNone;
  bool ordered = false;  // a dict made by collections.OrderedDict()
  int depth = 0;         // container nesting, as far as construction shows it
  int64_t integer = 0;   // int, bool, Global id; for a tensor: the byte offset of its REDUCE
  double real = 0;
  std::string text;             // str; a global's "module.name"; a storage's key
  std::vector<uint32_t> items;  // tuple/list elements; dict keys and values alternating;
                                // a tensor's storage object
  // Storage (persistent id) and tensor (_rebuild_tensor_v2) fields.
  TorchStorageType storage_type = TorchStorageType::kFloat;
  int64_t storage_numel = 0;
  int64_t storage_offset = 0;
  std::vector<int64_t> sizes, strides;
};

// Thrown inside the machine, caught at its entry point and turned into a Status.
struct Refusal {
  std::string message;
};

std::string printable_opcode(uint8_t op) {
  if (std::isprint(op)) return absl::StrFormat("0x%02x ('%c')", op, static_cast<char>(op));
  return absl::StrFormat("0x%02x", op);
}

// Names of the standard opcodes we do not interpret, for clearer refusals.
const char* refused_opcode_name(uint8_t op) {
  switch (op) {
    case 'i': return "INST (calls a global)";
    case 'o': return "OBJ (calls a class)";
    case 0x81: return "NEWOBJ (calls cls.__new__)";
    case 0x92: return "NEWOBJ_EX (calls cls.__new__)";
    case 0x82: case 0x83: case 0x84: return "EXT1/2/4 (a global from the extension registry)";
    case 'P': return "PERSID";
    case 'I': return "INT";
    case 'L': return "LONG";
    case 0x8b: return "LONG4";
    case 'F': return "FLOAT";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x8e: return "BINBYTES8";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    case 'p': return "PUT";
    case 'g': return "GET";
    case 'l': return "LIST";
    case 'd': return "DICT";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case '2': return "DUP";
    default: return nullptr;
  }
}

class Machine {
 public:
  Machine(std::string_view bytes, const std::string& source, const TorchPickleLimits& limits)
      : bytes_(bytes), source_(source), limits_(limits) {}

  std::vector<TorchTensorRecord> run() {
    while (true) {
      op_offset_ = pos_;
      if (pos_ >= bytes_.size()) fail("the pickle ends without a STOP opcode (truncated?)");
      const uint8_t op = static_cast<uint8_t>(bytes_[pos_++]);
      if (op == '.') return finish();
      step(op);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Refusal{absl::StrCat(source_, ": byte ", op_offset_, ": ", what)};
  }

  // ---- input ----
  const char* take(uint64_t count, const char* what) {
    if (count > bytes_.size() - pos_) {
      fail(absl::StrCat("the pickle ends inside ", what, " (needs ", count, " bytes, ", bytes_.size() - pos_, " left)"));
    }
    const char* p = bytes_.data() + pos_;
    pos_ += static_cast<size_t>(count);
    return p;
  }
  uint64_t read_le(int count, const char* what) {
    const char* p = take(static_cast<uint64_t>(count), what);
    uint64_t value = 0;
    for (int i = count - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(p[i]);
    return value;
  }
  std::string read_line(const char* what) {
    constexpr size_t kMaxLine = 256;
    const size_t end = bytes_.find('\n', pos_);
    if (end == std::string_view::npos) fail(absl::StrCat("the pickle ends inside ", what));
    if (end - pos_ > kMaxLine) fail(absl::StrCat(what, " is longer than ", kMaxLine, " bytes"));
    std::string line(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return line;
  }

  // ---- objects and stacks ----
  uint32_t make(Object object) {
    if (objects_.size() >= limits_.max_objects) fail(absl::StrCat("more than ", limits_.max_objects, " objects"));
    objects_.push_back(std::move(object));
    return static_cast<uint32_t>(objects_.size() - 1);
  }
  Object& at(uint32_t id) { return objects_[id]; }
  size_t frame_base() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(uint32_t id) {
    if (stack_.size() >= limits_.max_stack) fail(absl::StrCat("the stack grows past ", limits_.max_stack, " entries"));
    stack_.push_back(id);
  }
  uint32_t pop() {
    if (stack_.size() <= frame_base()) fail("stack underflow");
    const uint32_t id = stack_.back();
    stack_.pop_back();
    return id;
  }
  uint32_t top() {
    if (stack_.size() <= frame_base()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<uint32_t> pop_mark() {
    if (marks_.empty()) fail("an opcode needs a MARK but none is open");
    const size_t base = marks_.back();
    marks_.pop_back();
    std::vector<uint32_t> items(stack_.begin() + static_cast<std::ptrdiff_t>(base), stack_.end());
    stack_.resize(base);
    return items;
  }
  // A container's depth after `child` goes into it.
  void nest(Object& container, uint32_t child) {
    const int depth = at(child).depth + 1;
    if (depth > limits_.max_depth) fail(absl::StrCat("containers nested deeper than ", limits_.max_depth));
    if (depth > container.depth) container.depth = depth;
  }
  uint32_t make_container(Kind kind, const std::vector<uint32_t>& items) {
    Object object;
    object.kind = kind;
    object.depth = 1;
    for (uint32_t item : items) nest(object, item);
    object.items = items;
    return make(std::move(object));
  }
  uint32_t make_int(int64_t value) {
    Object object;
    object.kind = Kind::kInt;
    object.integer = value;
    return make(std::move(object));
  }
  uint32_t make_string(uint64_t length) {
    if (length > limits_.max_string_bytes) {
      fail(absl::StrCat("a string of ", length, " bytes exceeds the limit of ", limits_.max_string_bytes));
    }
    Object object;
    object.kind = Kind::kString;
    object.text = std::string(take(length, "a string"), static_cast<size_t>(length));
    return make(std::move(object));
  }
  void memo_put(uint64_t index) {
    if (index >= limits_.max_memo_index) {
      fail(absl::StrCat("memo index ", index, " exceeds the limit of ", limits_.max_memo_index));
    }
    memo_[static_cast<uint32_t>(index)] = top();
  }
  void memo_get(uint64_t index) {
    auto found = memo_.find(static_cast<uint32_t>(index));
    if (index >= limits_.max_memo_index || found == memo_.end()) fail(absl::StrCat("memo index ", index, " was never stored"));
    push(found->second);
  }
  Object& expect(uint32_t id, Kind kind, const char* role) {
    Object& object = at(id);
    if (object.kind != kind) fail(absl::StrCat(role, " is a ", kind_name(object.kind), ", expected a ", kind_name(kind)));
    return object;
  }
  void add_dict_items(uint32_t dict_id, const std::vector<uint32_t>& items) {
    Object& dict = expect(dict_id, Kind::kDict, "the target of SETITEM(S)");
    if (items.size() % 2 != 0) fail("SETITEMS with an odd number of keys and values");
    for (size_t i = 0; i < items.size(); i += 2) {
      const Kind key_kind = at(items[i]).kind;
      if (key_kind == Kind::kList || key_kind == Kind::kDict) fail(absl::StrCat("a dict key is an unhashable ", kind_name(key_kind)));
    }
    for (uint32_t item : items) nest(at(dict_id), item);
    dict.items.insert(dict.items.end(), items.begin(), items.end());
  }
  void add_list_items(uint32_t list_id, const std::vector<uint32_t>& items) {
    expect(list_id, Kind::kList, "the target of APPEND(S)");
    for (uint32_t item : items) nest(at(list_id), item);
    Object& list = at(list_id);
    list.items.insert(list.items.end(), items.begin(), items.end());
  }

  // GLOBAL / STACK_GLOBAL: only whitelisted names become objects.
  uint32_t make_global(const std::string& module, const std::string& name) {
    for (const AllowedGlobal& allowed : kAllowedGlobals) {
      if (module == allowed.module && name == allowed.name) {
        Object object;
        object.kind = Kind::kGlobal;
        object.integer = static_cast<int64_t>(allowed.id);
        object.text = absl::StrCat(module, ".", name);
        return make(std::move(object));
      }
    }
    // A storage of another dtype is not an attack, just not a T5 weight: say so.
    if (module == "torch" && name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0) {
      fail(absl::StrCat("storage type \"torch.", name, "\" is not supported: T5 weights are read from ",
                        "torch.FloatStorage, torch.HalfStorage or torch.BFloat16Storage (float32, float16, bfloat16)"));
    }
    std::vector<std::string> names;
    for (const AllowedGlobal& allowed : kAllowedGlobals) names.push_back(absl::StrCat(allowed.module, ".", allowed.name));
    fail(absl::StrCat("refusing global \"", module, ".", name,
                      "\": a pickle can run code, so only the names a torch.save state dict uses are accepted (",
                      absl::StrJoin(names, ", "), ")"));
  }

  // BINPERSID: torch.save's ("storage", storage type, key, location, numel).
  uint32_t persistent_load(uint32_t pid_id) {
    const Object& pid = expect(pid_id, Kind::kTuple, "the persistent id");
    if (pid.items.size() != 5 || at(pid.items[0]).kind != Kind::kString || at(pid.items[0]).text != "storage") {
      fail("the persistent id is not (\"storage\", type, key, location, numel)");
    }
    const Object& type = at(pid.items[1]);
    if (type.kind != Kind::kGlobal) fail("the storage type in a persistent id is not a global");
    Object storage;
    storage.kind = Kind::kStorage;
    switch (static_cast<Global>(type.integer)) {
      case Global::kFloatStorage: storage.storage_type = TorchStorageType::kFloat; break;
      case Global::kHalfStorage: storage.storage_type = TorchStorageType::kHalf; break;
      case Global::kBFloat16Storage: storage.storage_type = TorchStorageType::kBFloat16; break;
      default: fail(absl::StrCat("\"", type.text, "\" is not a storage type"));
    }
    const Object& key = expect(pid.items[2], Kind::kString, "the storage key");
    if (key.text.empty() || key.text.size() > 64 ||
        !std::all_of(key.text.begin(), key.text.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; })) {
      fail("a storage key must be 1 to 64 letters, digits or underscores");
    }
    expect(pid.items[3], Kind::kString, "the storage location");
    const Object& numel = expect(pid.items[4], Kind::kInt, "the storage size");
    if (numel.integer < 0 || numel.integer > kMaxExtent) fail(absl::StrCat("storage size ", numel.integer, " is out of range"));
    storage.text = key.text;
    storage.storage_numel = numel.integer;
    return make(std::move(storage));
  }

  std::vector<int64_t> int_tuple(uint32_t id, const char* role) {
    const Object& tuple = expect(id, Kind::kTuple, role);
    if (tuple.items.size() > static_cast<size_t>(limits_.max_dimensions)) {
      fail(absl::StrCat(role, " has ", tuple.items.size(), " dimensions, more than ", limits_.max_dimensions));
    }
    std::vector<int64_t> values;
    for (uint32_t item : tuple.items) {
      const Object& value = expect(item, Kind::kInt, role);
      if (value.integer < 0 || value.integer > kMaxExtent) fail(absl::StrCat(role, " holds ", value.integer, ", out of range"));
      values.push_back(value.integer);
    }
    return values;
  }
  void expect_empty_dict_or_none(uint32_t id, const char* role) {
    const Object& object = at(id);
    if (object.kind == Kind::kNone) return;
    if (object.kind != Kind::kDict || !object.items.empty()) fail(absl::StrCat(role, " must be empty"));
  }

  // REDUCE: calls only the whitelisted callables, each checking its arguments.
  uint32_t reduce(uint32_t callable_id, uint32_t args_id) {
    const Object& callable = at(callable_id);
    if (callable.kind != Kind::kGlobal) fail(absl::StrCat("REDUCE calls a ", kind_name(callable.kind)));
    const std::vector<uint32_t> args = expect(args_id, Kind::kTuple, "REDUCE's arguments").items;
    switch (static_cast<Global>(callable.integer)) {
      case Global::kOrderedDict: {
        if (!args.empty()) fail("collections.OrderedDict is called with arguments");
        Object dict;
        dict.kind = Kind::kDict;
        dict.ordered = true;
        dict.depth = 1;
        return make(std::move(dict));
      }
      case Global::kRebuildTensorV2: {
        if (args.size() != 6 && args.size() != 7) {
          fail(absl::StrCat("torch._utils._rebuild_tensor_v2 takes 6 or 7 arguments, got ", args.size()));
        }
        expect(args[0], Kind::kStorage, "the tensor's storage");
        const Object& offset = expect(args[1], Kind::kInt, "the storage offset");
        if (offset.integer < 0 || offset.integer > kMaxExtent) fail(absl::StrCat("storage offset ", offset.integer, " is out of range"));
        Object tensor;
        tensor.kind = Kind::kTensor;
        tensor.integer = static_cast<int64_t>(op_offset_);
        tensor.items = {args[0]};
        tensor.storage_offset = offset.integer;
        tensor.sizes = int_tuple(args[2], "the tensor's sizes");
        tensor.strides = int_tuple(args[3], "the tensor's strides");
        if (tensor.sizes.size() != tensor.strides.size()) {
          fail(absl::StrCat("the tensor has ", tensor.sizes.size(), " sizes but ", tensor.strides.size(), " strides"));
        }
        expect(args[4], Kind::kBool, "requires_grad");
        expect_empty_dict_or_none(args[5], "the tensor's backward hooks");
        // Tensor metadata (torch._utils.get_tensor_metadata) is only written when non-empty;
        // we know no kind that a plain weight needs.
        if (args.size() == 7) expect_empty_dict_or_none(args[6], "the tensor's metadata");
        return make(std::move(tensor));
      }
      case Global::kRebuildParameter: {
        if (args.size() != 3) fail(absl::StrCat("torch._utils._rebuild_parameter takes 3 arguments, got ", args.size()));
        expect(args[0], Kind::kTensor, "the parameter's data");
        expect(args[1], Kind::kBool, "requires_grad");
        expect_empty_dict_or_none(args[2], "the parameter's backward hooks");
        return args[0];
      }
      default:
        fail(absl::StrCat(callable.text, " cannot be called"));
    }
  }

  void step(uint8_t op) {
    switch (op) {
      case 0x80: {  // PROTO
        const uint64_t version = read_le(1, "PROTO");
        if (version < 2 || version > 5) fail(absl::StrCat("pickle protocol ", version, " (torch.save writes 2; 2 to 5 are read)"));
        return;
      }
      case 0x95: read_le(8, "FRAME"); return;  // protocol 4 framing: only a length hint
      case '(':
        if (marks_.size() >= limits_.max_marks) fail(absl::StrCat("more than ", limits_.max_marks, " nested MARKs"));
        marks_.push_back(stack_.size());
        return;
      case '0':  // POP
        if (stack_.size() > frame_base()) {
          stack_.pop_back();
        } else {
          pop_mark();
        }
        return;
      case '1': pop_mark(); return;  // POP_MARK
      case 'N': push(make(Object{})); return;
      case 0x88: case 0x89: {  // NEWTRUE, NEWFALSE
        Object object;
        object.kind = Kind::kBool;
        object.integer = op == 0x88;
        push(make(std::move(object)));
        return;
      }
      case 'J': push(make_int(static_cast<int32_t>(static_cast<uint32_t>(read_le(4, "BININT"))))); return;
      case 'K': push(make_int(static_cast<int64_t>(read_le(1, "BININT1")))); return;
      case 'M': push(make_int(static_cast<int64_t>(read_le(2, "BININT2")))); return;
      case 0x8a: {  // LONG1: little-endian two's complement of n bytes
        const uint64_t n = read_le(1, "LONG1");
        if (n > 8) fail(absl::StrCat("an integer of ", n, " bytes is too large"));
        uint64_t value = n == 0 ? 0 : read_le(static_cast<int>(n), "LONG1");
        if (n > 0 && n < 8 && (value >> (8 * n - 1)) & 1) value |= ~uint64_t{0} << (8 * n);  // sign-extend
        push(make_int(static_cast<int64_t>(value)));
        return;
      }
      case 'G': {  // BINFLOAT: big-endian double
        const char* p = take(8, "BINFLOAT");
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(p[i]);
        Object object;
        object.kind = Kind::kFloat;
        std::memcpy(&object.real, &bits, sizeof bits);
        push(make(std::move(object)));
        return;
      }
      case 'X': push(make_string(read_le(4, "BINUNICODE"))); return;
      case 0x8c: push(make_string(read_le(1, "SHORT_BINUNICODE"))); return;
      case 0x8d: push(make_string(read_le(8, "BINUNICODE8"))); return;
      case ')': push(make_container(Kind::kTuple, {})); return;
      case 't': push(make_container(Kind::kTuple, pop_mark())); return;
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        std::vector<uint32_t> items(static_cast<size_t>(op - 0x84));
        for (size_t i = items.size(); i-- > 0;) items[i] = pop();
        push(make_container(Kind::kTuple, items));
        return;
      }
      case ']': push(make_container(Kind::kList, {})); return;
      case '}': push(make_container(Kind::kDict, {})); return;
      case 'a': {
        const uint32_t value = pop();
        add_list_items(top(), {value});
        return;
      }
      case 'e': {
        const std::vector<uint32_t> items = pop_mark();
        add_list_items(top(), items);
        return;
      }
      case 's': {
        const uint32_t value = pop();
        const uint32_t key = pop();
        add_dict_items(top(), {key, value});
        return;
      }
      case 'u': {
        const std::vector<uint32_t> items = pop_mark();
        add_dict_items(top(), items);
        return;
      }
      case 'c': {
        const std::string module = read_line("GLOBAL's module");
        const std::string name = read_line("GLOBAL's name");
        push(make_global(module, name));
        return;
      }
      case 0x93: {  // STACK_GLOBAL
        const uint32_t name = pop();
        const uint32_t module = pop();
        push(make_global(expect(module, Kind::kString, "STACK_GLOBAL's module").text,
                         expect(name, Kind::kString, "STACK_GLOBAL's name").text));
        return;
      }
      case 'q': memo_put(read_le(1, "BINPUT")); return;
      case 'r': memo_put(read_le(4, "LONG_BINPUT")); return;
      case 0x94: memo_put(memo_.size()); return;  // MEMOIZE
      case 'h': memo_get(read_le(1, "BINGET")); return;
      case 'j': memo_get(read_le(4, "LONG_BINGET")); return;
      case 'Q': push(persistent_load(pop())); return;
      case 'R': {
        const uint32_t args = pop();
        const uint32_t callable = pop();
        push(reduce(callable, args));
        return;
      }
      case 'b': {  // BUILD: only the state dict's __dict__ ({"_metadata": ...}), which we ignore
        const uint32_t state = pop();
        const Object& target = at(top());
        if (target.kind != Kind::kDict) fail(absl::StrCat("BUILD on a ", kind_name(target.kind), " is not supported"));
        const Kind state_kind = at(state).kind;
        if (state_kind != Kind::kDict && state_kind != Kind::kNone) {
          fail(absl::StrCat("BUILD of a dict with a ", kind_name(state_kind), " state is not supported"));
        }
        return;
      }
      default: {
        const char* name = refused_opcode_name(op);
        fail(absl::StrCat("unsupported pickle opcode ", printable_opcode(op), name ? absl::StrCat(" ", name) : "",
                          ": only the opcodes torch.save writes for a state dict are interpreted"));
      }
    }
  }

  std::string describe_tensor(const Object& tensor) const {
    return absl::StrCat("sizes [", absl::StrJoin(tensor.sizes, ", "), "] strides [", absl::StrJoin(tensor.strides, ", "),
                        "] at storage offset ", tensor.storage_offset);
  }

  // STOP: the pickled object must be {name: tensor}.
  std::vector<TorchTensorRecord> finish() {
    if (!marks_.empty()) fail("STOP with a MARK still open");
    if (stack_.size() != 1) fail(absl::StrCat("STOP with ", stack_.size(), " values on the stack, expected 1"));
    const Object& root = at(stack_.back());
    if (root.kind != Kind::kDict) {
      fail(absl::StrCat("the pickled object is a ", kind_name(root.kind), ", not a state dict of tensors"));
    }
    std::vector<TorchTensorRecord> records;
    std::set<std::string> names;
    std::map<std::string, std::pair<TorchStorageType, int64_t>> storages;
    for (size_t i = 0; i < root.items.size(); i += 2) {
      const Object& key = at(root.items[i]);
      const Object& value = at(root.items[i + 1]);
      if (key.kind != Kind::kString) fail(absl::StrCat("the state dict has a ", kind_name(key.kind), " key"));
      if (value.kind != Kind::kTensor) {
        fail(absl::StrCat("state dict entry \"", key.text, "\" is a ", kind_name(value.kind), ", not a tensor"));
      }
      if (!names.insert(key.text).second) fail(absl::StrCat("state dict entry \"", key.text, "\" appears twice"));
      const Object& storage = at(value.items[0]);
      const std::string where = absl::StrCat("tensor \"", key.text, "\" (built at byte ", value.integer, ")");
      auto [known, inserted] = storages.emplace(storage.text, std::make_pair(storage.storage_type, storage.storage_numel));
      if (!inserted && known->second != std::make_pair(storage.storage_type, storage.storage_numel)) {
        fail(absl::StrCat(where, ": storage \"", storage.text, "\" is declared as ", torch_storage_type_name(storage.storage_type),
                          " of ", storage.storage_numel, " elements but elsewhere as ",
                          torch_storage_type_name(known->second.first), " of ", known->second.second));
      }
      // The last element the view reaches must lie inside the storage.
      int64_t numel = 1;
      for (int64_t size : value.sizes) {
        if (size != 0 && numel > kMaxExtent / size) fail(absl::StrCat(where, ": ", describe_tensor(value), " is too large"));
        numel *= size;
      }
      if (numel > 0) {
        int64_t last = value.storage_offset;
        for (size_t d = 0; d < value.sizes.size(); ++d) {
          const int64_t step = value.sizes[d] - 1;
          if (step > 0 && value.strides[d] > (kMaxExtent - last) / step) {
            fail(absl::StrCat(where, ": ", describe_tensor(value), " reaches past any storage"));
          }
          last += step * value.strides[d];
        }
        if (last >= storage.storage_numel) {
          fail(absl::StrCat(where, ": ", describe_tensor(value), " reaches element ", last, " but storage \"",
                            storage.text, "\" holds ", storage.storage_numel, " elements"));
        }
      }
      TorchTensorRecord record;
      record.name = key.text;
      record.storage_key = storage.text;
      record.storage_type = storage.storage_type;
      record.storage_numel = storage.storage_numel;
      record.storage_offset = value.storage_offset;
      record.sizes = value.sizes;
      record.strides = value.strides;
      records.push_back(std::move(record));
    }
    return records;
  }

  std::string_view bytes_;
  const std::string& source_;
  const TorchPickleLimits& limits_;
  size_t pos_ = 0;
  size_t op_offset_ = 0;
  std::vector<Object> objects_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, uint32_t> memo_;
};

}  // namespace

absl::StatusOr<std::vector<TorchTensorRecord>> parse_torch_pickle(std::string_view bytes, const std::string& source,
                                                                 const TorchPickleLimits& limits) {
  try {
    return Machine(bytes, source, limits).run();
  } catch (const Refusal& refusal) {
    return absl::InvalidArgumentError(refusal.message);
  }
}

}  // namespace la3
