// flaxdrm ioctl tests: every ioctl's success path and its refusals, with
// the exact errno, through raw drmIoctl on the UAPI structs.
//
// Suites:
//   Ioctl       needs flaxdrm.ko only (runs as the unprivileged test user);
//   EngineJobs  needs the real engine attached: without one (GET_PARAM
//               ENGINE_ATTACHED == 0) its tests FAIL, unless
//               FLAXDRM_TEST_NO_ENGINE=1, where they are skipped;
//   EngineLink  plays the engine itself through the primary node: runs only
//               as root with no engine attached (tests/vm/run.sh --no-engine
//               --root-cmd '.../ioctl_test --gtest_filter=EngineLink.*' true),
//               and is skipped otherwise.
#include <gtest/gtest.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/sync_file.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xf86drm.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "flaxdrm_drm.h"

namespace {

struct Nodes {
  std::string render;
  std::string primary;
};

const Nodes &FindNodes() {
  static Nodes nodes = [] {
    Nodes n;
    drmDevicePtr devs[64];
    int count = drmGetDevices2(0, devs, 64);
    for (int i = 0; i < count; i++) {
      if (!(devs[i]->available_nodes & (1 << DRM_NODE_RENDER)))
        continue;
      int fd = open(devs[i]->nodes[DRM_NODE_RENDER], O_RDWR | O_CLOEXEC);
      if (fd < 0)
        continue;
      drmVersionPtr v = drmGetVersion(fd);
      bool ours = v && std::string(v->name, v->name_len) == FLAXDRM_DRIVER_NAME;
      drmFreeVersion(v);
      close(fd);
      if (!ours)
        continue;
      n.render = devs[i]->nodes[DRM_NODE_RENDER];
      if (devs[i]->available_nodes & (1 << DRM_NODE_PRIMARY))
        n.primary = devs[i]->nodes[DRM_NODE_PRIMARY];
      break;
    }
    if (count > 0)
      drmFreeDevices(devs, count);
    return n;
  }();
  return nodes;
}

// errno of an ioctl, 0 on success.
int Err(int fd, unsigned long request, void *arg) {
  return drmIoctl(fd, request, arg) ? errno : 0;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  Fd(Fd &&o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd &operator=(Fd &&o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0)
      close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

Fd OpenRender() {
  const Nodes &n = FindNodes();
  if (n.render.empty())
    return Fd();
  return Fd(open(n.render.c_str(), O_RDWR | O_CLOEXEC));
}

uint64_t GetParam(int fd, uint32_t param) {
  drm_flaxdrm_get_param p{};
  p.param = param;
  EXPECT_EQ(Err(fd, DRM_IOCTL_FLAXDRM_GET_PARAM, &p), 0);
  return p.value;
}

uint32_t BoCreate(int fd, uint64_t size) {
  drm_flaxdrm_bo_create c{};
  c.size = size;
  EXPECT_EQ(Err(fd, DRM_IOCTL_FLAXDRM_BO_CREATE, &c), 0);
  EXPECT_NE(c.handle, 0u);
  return c.handle;
}

// Maps a BO of the given size (page-rounded by the kernel) read-write.
void *BoMap(int fd, uint32_t handle, size_t size) {
  drm_flaxdrm_bo_mmap_offset m{};
  m.handle = handle;
  if (Err(fd, DRM_IOCTL_FLAXDRM_BO_MMAP_OFFSET, &m))
    return nullptr;
  void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                 static_cast<off_t>(m.offset));
  return p == MAP_FAILED ? nullptr : p;
}

drm_flaxdrm_module_create ModuleArgs(uint32_t parent, uint32_t kind,
                                     const char *name = "",
                                     const char *class_name = "") {
  drm_flaxdrm_module_create c{};
  c.parent = parent;
  c.kind = kind;
  strncpy(c.name, name, sizeof(c.name) - 1);
  strncpy(c.class_name, class_name, sizeof(c.class_name) - 1);
  return c;
}

uint32_t ModuleCreate(int fd, uint32_t parent, uint32_t kind,
                      const char *name = "", const char *class_name = "",
                      std::string *chosen = nullptr) {
  drm_flaxdrm_module_create c = ModuleArgs(parent, kind, name, class_name);
  EXPECT_EQ(Err(fd, DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), 0)
      << "name '" << name << "' class '" << class_name << "'";
  if (chosen)
    *chosen = c.name;
  return c.handle;
}

drm_flaxdrm_var_bind VarArgs(uint32_t module, uint32_t bo, uint64_t offset,
                             const char *collection, const char *name,
                             std::vector<uint32_t> dims,
                             uint32_t dtype = FLAXDRM_DTYPE_F32) {
  drm_flaxdrm_var_bind v{};
  v.module = module;
  v.bo = bo;
  v.offset = offset;
  v.dtype = dtype;
  v.rank = static_cast<uint32_t>(dims.size());
  for (size_t i = 0; i < dims.size() && i < FLAXDRM_MAX_RANK; i++)
    v.dims[i] = dims[i];
  strncpy(v.collection, collection, sizeof(v.collection) - 1);
  strncpy(v.name, name, sizeof(v.name) - 1);
  return v;
}

drm_flaxdrm_tensor Tensor(uint32_t kind, std::vector<uint32_t> dims,
                          uint32_t module = 0, const char *collection = "",
                          const char *name = "",
                          uint32_t dtype = FLAXDRM_DTYPE_F32) {
  drm_flaxdrm_tensor t{};
  t.kind = kind;
  t.dtype = dtype;
  t.rank = static_cast<uint32_t>(dims.size());
  for (size_t i = 0; i < dims.size() && i < FLAXDRM_MAX_RANK; i++)
    t.dims[i] = dims[i];
  t.module = module;
  strncpy(t.collection, collection, sizeof(t.collection) - 1);
  strncpy(t.name, name, sizeof(t.name) - 1);
  return t;
}

drm_flaxdrm_op Op(uint32_t opcode, uint32_t module,
                  std::vector<uint32_t> inputs, std::vector<uint32_t> outputs) {
  drm_flaxdrm_op o{};
  o.opcode = opcode;
  o.module = module;
  o.num_inputs = static_cast<uint32_t>(inputs.size());
  o.num_outputs = static_cast<uint32_t>(outputs.size());
  for (size_t i = 0; i < inputs.size(); i++)
    o.inputs[i] = inputs[i];
  for (size_t i = 0; i < outputs.size(); i++)
    o.outputs[i] = outputs[i];
  return o;
}

struct ProgramResult {
  int err;
  uint32_t handle;
  uint32_t error_op;
  uint32_t error_tensor;
};

ProgramResult ProgramCreate(int fd, uint32_t root,
                            const std::vector<drm_flaxdrm_tensor> &tensors,
                            const std::vector<drm_flaxdrm_op> &ops) {
  drm_flaxdrm_program_create p{};
  p.root = root;
  p.tensors = reinterpret_cast<uintptr_t>(tensors.data());
  p.ops = reinterpret_cast<uintptr_t>(ops.data());
  p.num_tensors = static_cast<uint32_t>(tensors.size());
  p.num_ops = static_cast<uint32_t>(ops.size());
  int err = Err(fd, DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p);
  return {err, p.handle, p.error_op, p.error_tensor};
}

// A Dense layer (x[2,3] @ kernel[3,4] + bias[4]) followed by relu, its
// variables in one BO. Tensors: 0 x INPUT, 1 kernel, 2 bias, 3 h TEMP,
// 4 y OUTPUT.
struct DenseModel {
  uint32_t root = 0;
  uint32_t dense = 0;
  uint32_t params_bo = 0;
  std::vector<drm_flaxdrm_tensor> tensors;
  std::vector<drm_flaxdrm_op> ops;
  uint32_t program = 0;
};

constexpr uint32_t kBatch = 2, kIn = 3, kOut = 4;

DenseModel MakeDense(int fd, bool bind = true) {
  DenseModel m;
  m.root = ModuleCreate(fd, 0, FLAXDRM_KIND_MODULE, "", "MLP");
  m.dense = ModuleCreate(fd, m.root, FLAXDRM_KIND_DENSE);
  m.params_bo = BoCreate(fd, 4096);
  if (bind) {
    auto k = VarArgs(m.dense, m.params_bo, 0, "params", "kernel", {kIn, kOut});
    EXPECT_EQ(Err(fd, DRM_IOCTL_FLAXDRM_VAR_BIND, &k), 0);
    auto b = VarArgs(m.dense, m.params_bo, 256, "params", "bias", {kOut});
    EXPECT_EQ(Err(fd, DRM_IOCTL_FLAXDRM_VAR_BIND, &b), 0);
  }
  m.tensors = {
      Tensor(FLAXDRM_TENSOR_INPUT, {kBatch, kIn}),
      Tensor(FLAXDRM_TENSOR_VARIABLE, {kIn, kOut}, m.dense, "params", "kernel"),
      Tensor(FLAXDRM_TENSOR_VARIABLE, {kOut}, m.dense, "params", "bias"),
      Tensor(FLAXDRM_TENSOR_TEMP, {kBatch, kOut}),
      Tensor(FLAXDRM_TENSOR_OUTPUT, {kBatch, kOut}),
  };
  m.ops = {
      Op(FLAXDRM_OP_DENSE, m.dense, {0, 1, 2}, {3}),
      Op(FLAXDRM_OP_RELU, 0, {3}, {4}),
  };
  if (bind) {
    ProgramResult r = ProgramCreate(fd, m.root, m.tensors, m.ops);
    EXPECT_EQ(r.err, 0) << "op " << r.error_op << " tensor " << r.error_tensor;
    m.program = r.handle;
  }
  return m;
}

struct Submit {
  drm_flaxdrm_submit args{};
  std::vector<drm_flaxdrm_binding> bindings;
  std::vector<drm_flaxdrm_sync> in_syncs;
  std::vector<drm_flaxdrm_collection> mutables;

  Submit(uint32_t op, uint32_t module, uint32_t program = 0) {
    args.op = op;
    args.module = module;
    args.program = program;
  }
  void Bind(uint32_t tensor, uint32_t bo, uint64_t offset) {
    bindings.push_back({tensor, bo, offset});
  }
  void Mutable(const char *name) {
    drm_flaxdrm_collection c{};
    strncpy(c.name, name, sizeof(c.name) - 1);
    mutables.push_back(c);
  }
  int Run(int fd) {
    args.bindings = reinterpret_cast<uintptr_t>(bindings.data());
    args.num_bindings = static_cast<uint32_t>(bindings.size());
    args.in_syncs = reinterpret_cast<uintptr_t>(in_syncs.data());
    args.num_in_syncs = static_cast<uint32_t>(in_syncs.size());
    args.mutable_collections = reinterpret_cast<uintptr_t>(mutables.data());
    args.num_mutable = static_cast<uint32_t>(mutables.size());
    return Err(fd, DRM_IOCTL_FLAXDRM_SUBMIT, &args);
  }
};

// Status of the fence in a binary syncobj: 1 signalled, 0 pending, <0 error.
int FenceStatus(int fd, uint32_t syncobj) {
  int sync_fd = -1;
  if (drmSyncobjExportSyncFile(fd, syncobj, &sync_fd))
    return -1000;
  sync_file_info info{};
  int ret = ioctl(sync_fd, SYNC_IOC_FILE_INFO, &info);
  close(sync_fd);
  return ret ? -1001 : info.status;
}

bool WaitSyncobj(int fd, uint32_t syncobj, int64_t timeout_ms = 60000) {
  // drm syncobj waits take an absolute CLOCK_MONOTONIC time in ns
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t abs = ts.tv_sec * 1000000000ll + ts.tv_nsec + timeout_ms * 1000000ll;
  return drmSyncobjWait(fd, &syncobj, 1, abs, DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL,
                        nullptr) == 0;
}

bool EngineAttached() {
  Fd fd = OpenRender();
  return fd.get() >= 0 &&
         GetParam(fd.get(), FLAXDRM_PARAM_ENGINE_ATTACHED) == 1;
}

class Ioctl : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(FindNodes().render.empty()) << "no flaxdrm render node";
    fd_ = OpenRender();
    ASSERT_GE(fd_.get(), 0);
    other_ = OpenRender();
    ASSERT_GE(other_.get(), 0);
  }
  int fd() const { return fd_.get(); }
  int other() const { return other_.get(); }

  Fd fd_, other_;
};

// ------------------------------------------------------------ GET_PARAM

TEST_F(Ioctl, GetParam) {
  EXPECT_EQ(GetParam(fd(), FLAXDRM_PARAM_VERSION),
            (uint64_t{FLAXDRM_VERSION_MAJOR} << 16) | FLAXDRM_VERSION_MINOR);
  EXPECT_LE(GetParam(fd(), FLAXDRM_PARAM_ENGINE_ATTACHED), 1u);
  EXPECT_GT(GetParam(fd(), FLAXDRM_PARAM_JOB_TIMEOUT_MS), 0u);
  EXPECT_EQ(GetParam(fd(), FLAXDRM_PARAM_MAX_TENSORS), FLAXDRM_MAX_TENSORS);
  EXPECT_EQ(GetParam(fd(), FLAXDRM_PARAM_MAX_OPS), FLAXDRM_MAX_OPS);

  drm_flaxdrm_get_param p{};
  p.param = 999;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_GET_PARAM, &p), EINVAL);
  p = {};
  p.param = FLAXDRM_PARAM_VERSION;
  p.pad = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_GET_PARAM, &p), EINVAL);
}

TEST_F(Ioctl, Fdinfo) {
  uint32_t bo = BoCreate(fd(), 1 << 20);
  (void)bo;
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd()));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("drm-driver:\tflaxdrm"), std::string::npos) << text;
  EXPECT_NE(text.find("drm-client-id:"), std::string::npos) << text;
  EXPECT_NE(text.find("drm-engine-compute:"), std::string::npos) << text;
}

TEST_F(Ioctl, DriverVersion) {
  drmVersionPtr v = drmGetVersion(fd());
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(std::string(v->name, v->name_len), "flaxdrm");
  EXPECT_EQ(v->version_major, FLAXDRM_VERSION_MAJOR);
  drmFreeVersion(v);
}

// ------------------------------------------------------------ BOs

TEST_F(Ioctl, BoCreateAndMap) {
  uint32_t h = BoCreate(fd(), 100);
  // rounded up to a page: the whole page maps
  auto *p = static_cast<uint8_t *>(BoMap(fd(), h, 4096));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 4096; i++)
    EXPECT_EQ(p[i], 0) << i;
  p[4095] = 0xab;
  munmap(p, 4096);
  p = static_cast<uint8_t *>(BoMap(fd(), h, 4096));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[4095], 0xab);
  munmap(p, 4096);

  drm_gem_close close_args{};
  close_args.handle = h;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_GEM_CLOSE, &close_args), 0);
}

TEST_F(Ioctl, BoCreateRefusals) {
  drm_flaxdrm_bo_create c{};
  c.size = 0;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_BO_CREATE, &c), EINVAL);
  c.size = FLAXDRM_MAX_BO_SIZE + 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_BO_CREATE, &c), EINVAL);
  c.size = UINT64_MAX;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_BO_CREATE, &c), EINVAL);
  c.size = 4096;
  c.flags = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_BO_CREATE, &c), EINVAL);
  // the largest size is accepted (shmem pages come on first touch)
  c = {};
  c.size = FLAXDRM_MAX_BO_SIZE;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_BO_CREATE, &c), 0);
}

TEST_F(Ioctl, BoMmapOffsetRefusals) {
  uint32_t h = BoCreate(fd(), 4096);
  drm_flaxdrm_bo_mmap_offset m{};
  m.handle = h;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_BO_MMAP_OFFSET, &m), 0);
  EXPECT_NE(m.offset, 0u);
  m.flags = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_BO_MMAP_OFFSET, &m), EINVAL);
  m = {};
  m.handle = h + 1000;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_BO_MMAP_OFFSET, &m), ENOENT);
  // a handle of another open file is unknown here
  m = {};
  m.handle = h;
  EXPECT_EQ(Err(other(), DRM_IOCTL_FLAXDRM_BO_MMAP_OFFSET, &m), ENOENT);
}

// ------------------------------------------------------------ modules

TEST_F(Ioctl, ModuleAutoNames) {
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "Model");
  std::string n;
  ModuleCreate(fd(), root, FLAXDRM_KIND_DENSE, "", "", &n);
  EXPECT_EQ(n, "Dense_0");
  ModuleCreate(fd(), root, FLAXDRM_KIND_DENSE, "", "", &n);
  EXPECT_EQ(n, "Dense_1");
  ModuleCreate(fd(), root, FLAXDRM_KIND_CONV, "", "", &n);
  EXPECT_EQ(n, "Conv_0");
  ModuleCreate(fd(), root, FLAXDRM_KIND_LAYER_NORM, "", "", &n);
  EXPECT_EQ(n, "LayerNorm_0");
  ModuleCreate(fd(), root, FLAXDRM_KIND_ATTENTION, "", "", &n);
  EXPECT_EQ(n, "MultiHeadDotProductAttention_0");
  ModuleCreate(fd(), root, FLAXDRM_KIND_SEQUENTIAL, "", "", &n);
  EXPECT_EQ(n, "Sequential_0");
  ModuleCreate(fd(), root, FLAXDRM_KIND_MODULE, "", "Block", &n);
  EXPECT_EQ(n, "Block_0");
  ModuleCreate(fd(), root, FLAXDRM_KIND_MODULE, "", "Block", &n);
  EXPECT_EQ(n, "Block_1");
  // an explicit name is used as given and does not move the counter
  ModuleCreate(fd(), root, FLAXDRM_KIND_DENSE, "head", "", &n);
  EXPECT_EQ(n, "head");
  ModuleCreate(fd(), root, FLAXDRM_KIND_DENSE, "", "", &n);
  EXPECT_EQ(n, "Dense_2");
  // counters are per parent
  uint32_t other_root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "Model");
  ModuleCreate(fd(), other_root, FLAXDRM_KIND_DENSE, "", "", &n);
  EXPECT_EQ(n, "Dense_0");
}

TEST_F(Ioctl, ModuleAutoNameTakenIsEEXIST) {
  // Like Flax: an auto-name taken by an explicit name is an error, and the
  // counter moves on.
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "Model");
  ModuleCreate(fd(), root, FLAXDRM_KIND_DENSE, "Dense_0");
  auto c = ModuleArgs(root, FLAXDRM_KIND_DENSE);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EEXIST);
  std::string n;
  ModuleCreate(fd(), root, FLAXDRM_KIND_DENSE, "", "", &n);
  EXPECT_EQ(n, "Dense_1");
}

TEST_F(Ioctl, SequentialNames) {
  // nn.Sequential names children by position, functions counting too
  uint32_t seq = ModuleCreate(fd(), 0, FLAXDRM_KIND_SEQUENTIAL);
  std::string n;
  ModuleCreate(fd(), seq, FLAXDRM_KIND_DENSE, "layers_0", "", &n);
  EXPECT_EQ(n, "layers_0");
  ModuleCreate(fd(), seq, FLAXDRM_KIND_DENSE, "layers_2", "", &n);
  EXPECT_EQ(n, "layers_2");
  auto dup = ModuleArgs(seq, FLAXDRM_KIND_CONV, "layers_2");
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &dup), EEXIST);
  // the same name under another parent is fine
  uint32_t seq2 = ModuleCreate(fd(), 0, FLAXDRM_KIND_SEQUENTIAL);
  ModuleCreate(fd(), seq2, FLAXDRM_KIND_DENSE, "layers_2", "", &n);
  EXPECT_EQ(n, "layers_2");
}

TEST_F(Ioctl, ModuleCreateRefusals) {
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "Model");
  drm_flaxdrm_module_create c;

  c = ModuleArgs(root, FLAXDRM_KIND_DENSE);
  c.flags = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  c = ModuleArgs(root, FLAXDRM_KIND_DENSE);
  c.pad = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  c = ModuleArgs(root, FLAXDRM_KIND_COUNT);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  // a root has no name
  c = ModuleArgs(0, FLAXDRM_KIND_DENSE, "x");
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  // class_name only for FLAXDRM_KIND_MODULE, and required there
  c = ModuleArgs(root, FLAXDRM_KIND_DENSE, "", "Foo");
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  c = ModuleArgs(root, FLAXDRM_KIND_MODULE, "", "");
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  c = ModuleArgs(root, FLAXDRM_KIND_MODULE, "", "A/B");
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  // names: no '/', NUL-terminated, zero-filled
  c = ModuleArgs(root, FLAXDRM_KIND_DENSE, "a/b");
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  c = ModuleArgs(root, FLAXDRM_KIND_DENSE);
  memset(c.name, 'a', sizeof(c.name));
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  c = ModuleArgs(root, FLAXDRM_KIND_DENSE, "ok");
  c.name[10] = 'x';
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  c = ModuleArgs(root, FLAXDRM_KIND_DENSE);
  c.name[5] = 'x';  // empty name with garbage after the NUL
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  // config
  std::vector<uint8_t> config(FLAXDRM_MAX_CONFIG_SIZE + 1, 1);
  c = ModuleArgs(root, FLAXDRM_KIND_DENSE);
  c.config = reinterpret_cast<uintptr_t>(config.data());
  c.config_size = FLAXDRM_MAX_CONFIG_SIZE + 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EINVAL);
  c.config_size = FLAXDRM_MAX_CONFIG_SIZE;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), 0);
  c = ModuleArgs(root, FLAXDRM_KIND_DENSE);
  c.config = 8;  // unmapped
  c.config_size = 16;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), EFAULT);
  // unknown parent, and a parent of another file
  c = ModuleArgs(root + 1000, FLAXDRM_KIND_DENSE);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), ENOENT);
  uint32_t theirs = ModuleCreate(other(), 0, FLAXDRM_KIND_SEQUENTIAL);
  uint32_t mine_only = ModuleCreate(fd(), 0, FLAXDRM_KIND_SEQUENTIAL);
  (void)mine_only;
  c = ModuleArgs(theirs + 100, FLAXDRM_KIND_DENSE);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), ENOENT);
}

TEST_F(Ioctl, ModuleOfAnotherFileIsUnknown) {
  // handles are per file: open the node twice, create in one, use in the
  // other (the other has no module with that handle)
  uint32_t theirs = ModuleCreate(other(), 0, FLAXDRM_KIND_SEQUENTIAL);
  drm_flaxdrm_module_query q{};
  q.handle = theirs;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), ENOENT);
  auto c = ModuleArgs(theirs, FLAXDRM_KIND_DENSE);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_CREATE, &c), ENOENT);
  drm_flaxdrm_module_destroy d{};
  d.handle = theirs;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_DESTROY, &d), ENOENT);
  EXPECT_EQ(Err(other(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), 0);
}

TEST_F(Ioctl, ModuleQueryPath) {
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "Model");
  uint32_t block = ModuleCreate(fd(), root, FLAXDRM_KIND_MODULE, "", "Block");
  ModuleCreate(fd(), block, FLAXDRM_KIND_DENSE);
  uint32_t d1 = ModuleCreate(fd(), block, FLAXDRM_KIND_DENSE);
  uint32_t bo = BoCreate(fd(), 4096);
  auto v = VarArgs(d1, bo, 0, "params", "kernel", {2, 2});
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), 0);

  char path[128];
  drm_flaxdrm_module_query q{};
  q.handle = d1;
  q.path = reinterpret_cast<uintptr_t>(path);
  q.path_size = sizeof(path);
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), 0);
  EXPECT_STREQ(path, "Block_0/Dense_1");
  EXPECT_EQ(q.path_size, strlen("Block_0/Dense_1") + 1);
  EXPECT_STREQ(q.name, "Dense_1");
  EXPECT_EQ(q.kind, uint32_t{FLAXDRM_KIND_DENSE});
  EXPECT_EQ(q.parent, block);
  EXPECT_EQ(q.num_children, 0u);
  EXPECT_EQ(q.num_variables, 1u);

  q = {};
  q.handle = block;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), 0);
  EXPECT_EQ(q.num_children, 2u);
  EXPECT_EQ(q.parent, root);
  EXPECT_EQ(q.path_size, strlen("Block_0") + 1);  // size only: path == 0

  // the root's path is empty
  q = {};
  q.handle = root;
  q.path = reinterpret_cast<uintptr_t>(path);
  q.path_size = sizeof(path);
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), 0);
  EXPECT_STREQ(path, "");
  EXPECT_EQ(q.parent, 0u);
  EXPECT_EQ(q.kind, uint32_t{FLAXDRM_KIND_MODULE});

  // too small a buffer: ENOSPC and the size needed
  q = {};
  q.handle = d1;
  q.path = reinterpret_cast<uintptr_t>(path);
  q.path_size = 4;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), ENOSPC);
  EXPECT_EQ(q.path_size, strlen("Block_0/Dense_1") + 1);
  // bad pointer
  q = {};
  q.handle = d1;
  q.path = 8;
  q.path_size = 64;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), EFAULT);
  // pads, unknown handle
  q = {};
  q.handle = d1;
  q.pad = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), EINVAL);
  q = {};
  q.handle = d1;
  q.pad2 = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), EINVAL);
  q = {};
  q.handle = d1 + 1000;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), ENOENT);
}

TEST_F(Ioctl, ModuleDestroySubtree) {
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "Model");
  uint32_t block = ModuleCreate(fd(), root, FLAXDRM_KIND_MODULE, "", "Block");
  uint32_t dense = ModuleCreate(fd(), block, FLAXDRM_KIND_DENSE);
  uint32_t conv = ModuleCreate(fd(), root, FLAXDRM_KIND_CONV);
  uint32_t bo = BoCreate(fd(), 4096);
  auto v = VarArgs(dense, bo, 0, "params", "kernel", {2, 2});
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), 0);

  drm_flaxdrm_module_destroy d{};
  d.handle = block;
  d.pad = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_DESTROY, &d), EINVAL);
  d.pad = 0;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_DESTROY, &d), 0);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_DESTROY, &d), ENOENT);

  drm_flaxdrm_module_query q{};
  q.handle = dense;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), ENOENT);
  q = {};
  q.handle = conv;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), 0);
  q = {};
  q.handle = root;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), 0);
  EXPECT_EQ(q.num_children, 1u);
  // the auto-name counter is not reset by a destroy (Flax never reuses)
  std::string n;
  ModuleCreate(fd(), root, FLAXDRM_KIND_MODULE, "", "Block", &n);
  EXPECT_EQ(n, "Block_1");
  // the BO outlives the variable that referenced it
  d.handle = root;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_DESTROY, &d), 0);
  void *p = BoMap(fd(), bo, 4096);
  EXPECT_NE(p, nullptr);
  if (p)
    munmap(p, 4096);
}

// ------------------------------------------------------------ VAR_BIND

TEST_F(Ioctl, VarBind) {
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "Model");
  uint32_t dense = ModuleCreate(fd(), root, FLAXDRM_KIND_DENSE);
  uint32_t bo = BoCreate(fd(), 4096);
  auto v = VarArgs(dense, bo, 0, "params", "kernel", {16, 16});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), 0);
  // exactly at the end of the BO
  v = VarArgs(dense, bo, 4096 - 4 * 8, "params", "bias", {8});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), 0);
  // rebinding replaces (still two variables)
  uint32_t bo2 = BoCreate(fd(), 8192);
  v = VarArgs(dense, bo2, 4096, "params", "kernel", {16, 16});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), 0);
  v = VarArgs(dense, bo2, 0, "batch_stats", "mean", {8}, FLAXDRM_DTYPE_F16);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), 0);
  drm_flaxdrm_module_query q{};
  q.handle = dense;
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), 0);
  EXPECT_EQ(q.num_variables, 3u);
  // the variable keeps its BO after the handle is closed
  drm_gem_close cl{};
  cl.handle = bo2;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_GEM_CLOSE, &cl), 0);
}

TEST_F(Ioctl, VarBindRefusals) {
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "Model");
  uint32_t dense = ModuleCreate(fd(), root, FLAXDRM_KIND_DENSE);
  uint32_t bo = BoCreate(fd(), 4096);
  drm_flaxdrm_var_bind v;

  v = VarArgs(dense, bo, 0, "params", "kernel", {4, 4});
  v.flags = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, 0, "params", "kernel", {4, 4});
  v.pad = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  // bad shapes
  v = VarArgs(dense, bo, 0, "params", "kernel", {1, 1, 1, 1, 1, 1});
  v.rank = 7;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, 0, "params", "kernel", {4, 0});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, 0, "params", "kernel", {4});
  v.dims[3] = 2;  // unused dim not zero
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, 0, "params", "kernel", {4}, 0);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, 0, "params", "kernel", {4}, 99);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, 0, "params", "kernel", {65536, 65536, 65536});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  // out of the BO: too big, offset past the end, offset overflow
  v = VarArgs(dense, bo, 0, "params", "kernel", {1025});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, 4093, "params", "kernel", {1});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, UINT64_MAX - 1, "params", "kernel", {1});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  // names
  v = VarArgs(dense, bo, 0, "", "kernel", {4});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, 0, "params", "", {4});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, 0, "params", "a/b", {4});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  v = VarArgs(dense, bo, 0, "params", "kernel", {4});
  memset(v.collection, 'c', sizeof(v.collection));
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), EINVAL);
  // unknown handles, and handles of another file
  v = VarArgs(dense + 1000, bo, 0, "params", "kernel", {4});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), ENOENT);
  v = VarArgs(dense, bo + 1000, 0, "params", "kernel", {4});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), ENOENT);
  uint32_t their_bo = BoCreate(other(), 4096);
  uint32_t their_root = ModuleCreate(other(), 0, FLAXDRM_KIND_DENSE);
  v = VarArgs(dense, their_bo + 1000, 0, "params", "kernel", {4});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), ENOENT);
  v = VarArgs(their_root + 1000, bo, 0, "params", "kernel", {4});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), ENOENT);
  // nothing was bound by the refusals
  drm_flaxdrm_module_query q{};
  q.handle = dense;
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_QUERY, &q), 0);
  EXPECT_EQ(q.num_variables, 0u);
}

TEST_F(Ioctl, VarBindForeignBo) {
  // the same handle number in two files names two different BOs; a BO
  // created only in the other file is unknown here
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_DENSE);
  uint32_t theirs = 0;
  for (int i = 0; i < 4; i++)
    theirs = BoCreate(other(), 4096);
  auto v = VarArgs(root, theirs, 0, "params", "kernel", {4});
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), ENOENT);
}

// ------------------------------------------------------------ programs

TEST_F(Ioctl, ProgramCreateAndDestroy) {
  DenseModel m = MakeDense(fd());
  EXPECT_NE(m.program, 0u);
  drm_flaxdrm_program_destroy d{};
  d.handle = m.program;
  d.pad = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_DESTROY, &d), EINVAL);
  d.pad = 0;
  EXPECT_EQ(Err(other(), DRM_IOCTL_FLAXDRM_PROGRAM_DESTROY, &d), ENOENT);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_DESTROY, &d), 0);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_DESTROY, &d), ENOENT);
}

TEST_F(Ioctl, ProgramArgRefusals) {
  DenseModel m = MakeDense(fd());
  drm_flaxdrm_program_create p{};
  auto fill = [&] {
    p = {};
    p.root = m.root;
    p.tensors = reinterpret_cast<uintptr_t>(m.tensors.data());
    p.ops = reinterpret_cast<uintptr_t>(m.ops.data());
    p.num_tensors = static_cast<uint32_t>(m.tensors.size());
    p.num_ops = static_cast<uint32_t>(m.ops.size());
  };
  fill();
  p.flags = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p), EINVAL);
  fill();
  p.pad = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p), EINVAL);
  fill();
  p.num_tensors = 0;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p), EINVAL);
  fill();
  p.num_ops = 0;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p), EINVAL);
  fill();
  p.num_tensors = FLAXDRM_MAX_TENSORS + 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p), EINVAL);
  fill();
  p.num_ops = FLAXDRM_MAX_OPS + 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p), EINVAL);
  fill();
  p.tensors = 8;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p), EFAULT);
  fill();
  p.ops = 8;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p), EFAULT);
  fill();
  p.root = m.root + 1000;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p), ENOENT);
  fill();
  p.root = 0;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_CREATE, &p), ENOENT);
}

TEST_F(Ioctl, ProgramReadBeforeWrite) {
  DenseModel m = MakeDense(fd());
  // relu reads the TEMP (3) before the Dense op writes it
  std::vector<drm_flaxdrm_op> ops = {
      Op(FLAXDRM_OP_RELU, 0, {3}, {4}),
      Op(FLAXDRM_OP_DENSE, m.dense, {0, 1, 2}, {3}),
  };
  ProgramResult r = ProgramCreate(fd(), m.root, m.tensors, ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 0u);
  EXPECT_EQ(r.error_tensor, 3u);
  // an OUTPUT never written
  std::vector<drm_flaxdrm_op> only_dense = {
      Op(FLAXDRM_OP_DENSE, m.dense, {0, 1, 2}, {3}),
  };
  r = ProgramCreate(fd(), m.root, m.tensors, only_dense);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, FLAXDRM_INDEX_NONE);
  EXPECT_EQ(r.error_tensor, 4u);
  // a TEMP written twice
  std::vector<drm_flaxdrm_op> twice = {
      Op(FLAXDRM_OP_DENSE, m.dense, {0, 1, 2}, {3}),
      Op(FLAXDRM_OP_RELU, 0, {0}, {3}),
  };
  r = ProgramCreate(fd(), m.root, m.tensors, twice);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 1u);
  EXPECT_EQ(r.error_tensor, 3u);
}

TEST_F(Ioctl, ProgramWrongShapes) {
  DenseModel m = MakeDense(fd());
  // the program's output has 5 features, the kernel gives 4
  auto tensors = m.tensors;
  tensors[3] = Tensor(FLAXDRM_TENSOR_TEMP, {kBatch, 5});
  tensors[4] = Tensor(FLAXDRM_TENSOR_OUTPUT, {kBatch, 5});
  ProgramResult r = ProgramCreate(fd(), m.root, tensors, m.ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 0u);
  EXPECT_EQ(r.error_tensor, 3u);
  // x has 5 input features: the kernel (3x4) is at fault
  tensors = m.tensors;
  tensors[0] = Tensor(FLAXDRM_TENSOR_INPUT, {kBatch, 5});
  r = ProgramCreate(fd(), m.root, tensors, m.ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 0u);
  EXPECT_EQ(r.error_tensor, 1u);
  // relu changes the shape
  tensors = m.tensors;
  tensors[4] = Tensor(FLAXDRM_TENSOR_OUTPUT, {kOut, kBatch});
  r = ProgramCreate(fd(), m.root, tensors, m.ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 1u);
  EXPECT_EQ(r.error_tensor, 4u);
  // a bad tensor descriptor on its own
  tensors = m.tensors;
  tensors[2].rank = 7;
  r = ProgramCreate(fd(), m.root, tensors, m.ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, FLAXDRM_INDEX_NONE);
  EXPECT_EQ(r.error_tensor, 2u);
  // an unknown opcode, and attributes on an op without any
  auto ops = m.ops;
  ops[1].opcode = 999;
  r = ProgramCreate(fd(), m.root, m.tensors, ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 1u);
  ops = m.ops;
  ops[0].attrs[3] = 1;
  r = ProgramCreate(fd(), m.root, m.tensors, ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 0u);
  // an operand index out of range
  ops = m.ops;
  ops[1].inputs[0] = 77;
  r = ProgramCreate(fd(), m.root, m.tensors, ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 1u);
  // a layer op without module, a plain op with one
  ops = m.ops;
  ops[0].module = 0;
  r = ProgramCreate(fd(), m.root, m.tensors, ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 0u);
  ops = m.ops;
  ops[1].module = m.dense;
  r = ProgramCreate(fd(), m.root, m.tensors, ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 1u);
}

TEST_F(Ioctl, ProgramVariableMustMatchBinding) {
  DenseModel m = MakeDense(fd());
  // the program says kernel is 3x4 but it is bound as 4x3: rebind it
  auto k = VarArgs(m.dense, m.params_bo, 0, "params", "kernel", {kOut, kIn});
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &k), 0);
  ProgramResult r = ProgramCreate(fd(), m.root, m.tensors, m.ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_tensor, 1u);
  // an unbound variable
  DenseModel u = MakeDense(fd(), false);
  r = ProgramCreate(fd(), u.root, u.tensors, u.ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_tensor, 1u);
  // a dtype mismatch
  DenseModel d = MakeDense(fd(), false);
  auto b = VarArgs(d.dense, d.params_bo, 0, "params", "kernel", {kIn, kOut},
                   FLAXDRM_DTYPE_I32);
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &b), 0);
  r = ProgramCreate(fd(), d.root, d.tensors, d.ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_tensor, 1u);
}

TEST_F(Ioctl, ProgramF16DenseBetweenAstypes) {
  // x.astype(f16) -> Dense on an f16 kernel -> astype(f32): accepted
  const uint32_t F16 = FLAXDRM_DTYPE_F16;
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "MLP");
  uint32_t dense = ModuleCreate(fd(), root, FLAXDRM_KIND_DENSE);
  uint32_t bo = BoCreate(fd(), 4096);
  auto k = VarArgs(dense, bo, 0, "params", "kernel", {kIn, kOut}, F16);
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &k), 0);
  std::vector<drm_flaxdrm_tensor> tensors = {
      Tensor(FLAXDRM_TENSOR_INPUT, {kBatch, kIn}),
      Tensor(FLAXDRM_TENSOR_TEMP, {kBatch, kIn}, 0, "", "", F16),
      Tensor(FLAXDRM_TENSOR_VARIABLE, {kIn, kOut}, dense, "params", "kernel",
             F16),
      Tensor(FLAXDRM_TENSOR_TEMP, {kBatch, kOut}, 0, "", "", F16),
      Tensor(FLAXDRM_TENSOR_OUTPUT, {kBatch, kOut}),
  };
  std::vector<drm_flaxdrm_op> ops = {
      Op(FLAXDRM_OP_ASTYPE, 0, {0}, {1}),
      Op(FLAXDRM_OP_DENSE, dense, {1, 2}, {3}),
      Op(FLAXDRM_OP_ASTYPE, 0, {3}, {4}),
  };
  ProgramResult r = ProgramCreate(fd(), root, tensors, ops);
  EXPECT_EQ(r.err, 0) << "op " << r.error_op << " tensor " << r.error_tensor;
  // the f32 x with the f16 kernel: the kernel is at fault
  auto mixed = ops;
  mixed[1].inputs[0] = 0;
  mixed[1].outputs[0] = 4;
  mixed.resize(2);
  r = ProgramCreate(fd(), root, tensors, mixed);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 1u);
  EXPECT_EQ(r.error_tensor, 2u);
  // astype to an integer dtype, and with an attribute
  auto to_int = tensors;
  to_int[4].dtype = FLAXDRM_DTYPE_I32;
  r = ProgramCreate(fd(), root, to_int, ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 2u);
  EXPECT_EQ(r.error_tensor, 4u);
  auto attr = ops;
  attr[0].attrs[0] = 1;
  r = ProgramCreate(fd(), root, tensors, attr);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 0u);
}

TEST_F(Ioctl, ProgramModuleNotUnderRoot) {
  DenseModel m = MakeDense(fd());
  // another root with a Dense that has the same variables
  uint32_t root2 = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "MLP");
  uint32_t dense2 = ModuleCreate(fd(), root2, FLAXDRM_KIND_DENSE);
  auto k = VarArgs(dense2, m.params_bo, 0, "params", "kernel", {kIn, kOut});
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &k), 0);
  // the layer op's module lies in another tree
  auto ops = m.ops;
  ops[0].module = dense2;
  ProgramResult r = ProgramCreate(fd(), m.root, m.tensors, ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 0u);
  // a VARIABLE of a module in another tree
  auto tensors = m.tensors;
  tensors[1].module = dense2;
  r = ProgramCreate(fd(), m.root, tensors, m.ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_tensor, 1u);
  // root being a child: the Dense is not under the Dense's sibling
  uint32_t sib = ModuleCreate(fd(), m.root, FLAXDRM_KIND_DENSE);
  r = ProgramCreate(fd(), sib, m.tensors, m.ops);
  EXPECT_EQ(r.err, EINVAL);
  // a layer op whose module has another kind
  uint32_t conv = ModuleCreate(fd(), m.root, FLAXDRM_KIND_CONV);
  ops = m.ops;
  ops[0].module = conv;
  r = ProgramCreate(fd(), m.root, m.tensors, ops);
  EXPECT_EQ(r.err, EINVAL);
  EXPECT_EQ(r.error_op, 0u);
  // rooted at the Dense itself is fine
  r = ProgramCreate(fd(), m.dense, m.tensors, m.ops);
  EXPECT_EQ(r.err, 0);
}

TEST_F(Ioctl, ProgramModuleOfAnotherFile) {
  DenseModel m = MakeDense(fd());
  // the other file has more modules and programs than this one, so its
  // handles below are numbers this file never gave out
  DenseModel theirs;
  for (int i = 0; i < 4; i++)
    theirs = MakeDense(other());
  ASSERT_GT(theirs.dense, m.dense + 2);
  auto ops = m.ops;
  ops[0].module = theirs.dense;
  ProgramResult r = ProgramCreate(fd(), m.root, m.tensors, ops);
  EXPECT_EQ(r.err, ENOENT);
  auto tensors = m.tensors;
  tensors[1].module = theirs.dense;
  r = ProgramCreate(fd(), m.root, tensors, m.ops);
  EXPECT_EQ(r.err, ENOENT);
  r = ProgramCreate(fd(), theirs.root, m.tensors, m.ops);
  EXPECT_EQ(r.err, ENOENT);
  // the other file's program is unknown here
  drm_flaxdrm_program_destroy d{};
  d.handle = theirs.program;
  ASSERT_GT(theirs.program, m.program);
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PROGRAM_DESTROY, &d), ENOENT);
  EXPECT_EQ(Err(other(), DRM_IOCTL_FLAXDRM_PROGRAM_DESTROY, &d), 0);
}

// ------------------------------------------------------------ SUBMIT

class IoctlSubmit : public Ioctl {
 protected:
  void SetUp() override {
    Ioctl::SetUp();
    engine_ = GetParam(fd(), FLAXDRM_PARAM_ENGINE_ATTACHED) == 1;
    m_ = MakeDense(fd());
    io_bo_ = BoCreate(fd(), 4096);
  }
  // what a valid submit returns: 0 with an engine, ENODEV without
  int ok() const { return engine_ ? 0 : ENODEV; }
  Submit Call() {
    Submit s(FLAXDRM_JOB_CALL, m_.root, m_.program);
    s.Bind(0, io_bo_, 0);
    s.Bind(4, io_bo_, 1024);
    return s;
  }

  bool engine_ = false;
  DenseModel m_;
  uint32_t io_bo_ = 0;
};

TEST_F(IoctlSubmit, ArgRefusals) {
  Submit s = Call();
  s.args.pad = 1;
  EXPECT_EQ(s.Run(fd()), EINVAL);
  s = Call();
  s.args.reserved = 1;
  EXPECT_EQ(s.Run(fd()), EINVAL);
  s = Call();
  s.args.flags = 2;
  EXPECT_EQ(s.Run(fd()), EINVAL);
  s = Call();
  s.args.op = 0;
  EXPECT_EQ(s.Run(fd()), EINVAL);
  s = Call();
  s.args.op = 4;
  EXPECT_EQ(s.Run(fd()), EINVAL);
  // SETUP and CLEANUP take no program, bindings or mutable list
  s = Call();
  s.args.op = FLAXDRM_JOB_SETUP;
  EXPECT_EQ(s.Run(fd()), EINVAL);
  Submit setup(FLAXDRM_JOB_SETUP, m_.root, m_.program);
  EXPECT_EQ(setup.Run(fd()), EINVAL);
  Submit cleanup(FLAXDRM_JOB_CLEANUP, m_.root);
  cleanup.Mutable("params");
  EXPECT_EQ(cleanup.Run(fd()), EINVAL);
  // counts
  s = Call();
  s.in_syncs.resize(FLAXDRM_MAX_SYNCS + 1);
  EXPECT_EQ(s.Run(fd()), EINVAL);
  s = Call();
  for (int i = 0; i <= FLAXDRM_MAX_MUTABLE; i++)
    s.Mutable("params");
  EXPECT_EQ(s.Run(fd()), EINVAL);
  s = Call();
  s.bindings.resize(FLAXDRM_MAX_BINDINGS + 1);
  EXPECT_EQ(s.Run(fd()), EINVAL);
  // bad pointers
  s = Call();
  s.Run(fd());  // fills the pointers
  s.args.bindings = 8;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_SUBMIT, &s.args), EFAULT);
  // a bad mutable collection name
  s = Call();
  s.Mutable("");
  EXPECT_EQ(s.Run(fd()), EINVAL);
}

TEST_F(IoctlSubmit, UnknownHandles) {
  Submit s = Call();
  s.args.module = m_.root + 1000;
  EXPECT_EQ(s.Run(fd()), ENOENT);
  s = Call();
  s.args.program = m_.program + 1000;
  EXPECT_EQ(s.Run(fd()), ENOENT);
  Submit setup(FLAXDRM_JOB_SETUP, m_.root + 1000);
  EXPECT_EQ(setup.Run(fd()), ENOENT);
  // the program and module of another file
  DenseModel theirs;
  for (int i = 0; i < 3; i++)
    theirs = MakeDense(other());
  s = Call();
  s.args.program = theirs.program;
  EXPECT_EQ(s.Run(fd()), ENOENT);
  s = Call();
  s.args.module = theirs.root;
  EXPECT_EQ(s.Run(fd()), ENOENT);
  // a BO of another file
  uint32_t their_bo = 0;
  for (int i = 0; i < 8; i++)
    their_bo = BoCreate(other(), 4096);
  s = Submit(FLAXDRM_JOB_CALL, m_.root, m_.program);
  s.Bind(0, io_bo_, 0);
  s.Bind(4, their_bo, 0);
  EXPECT_EQ(s.Run(fd()), ENOENT);
}

TEST_F(IoctlSubmit, Bindings) {
  EXPECT_EQ(Call().Run(fd()), ok());
  // missing binding
  Submit s(FLAXDRM_JOB_CALL, m_.root, m_.program);
  s.Bind(0, io_bo_, 0);
  EXPECT_EQ(s.Run(fd()), EINVAL);
  // none at all
  s = Submit(FLAXDRM_JOB_CALL, m_.root, m_.program);
  EXPECT_EQ(s.Run(fd()), EINVAL);
  // one tensor bound twice (and the other not)
  s = Submit(FLAXDRM_JOB_CALL, m_.root, m_.program);
  s.Bind(0, io_bo_, 0);
  s.Bind(0, io_bo_, 0);
  EXPECT_EQ(s.Run(fd()), EINVAL);
  // one binding too many
  s = Call();
  s.Bind(4, io_bo_, 0);
  EXPECT_EQ(s.Run(fd()), EINVAL);
  // binding a TEMP or VARIABLE tensor, or an index out of range
  s = Submit(FLAXDRM_JOB_CALL, m_.root, m_.program);
  s.Bind(0, io_bo_, 0);
  s.Bind(3, io_bo_, 0);
  EXPECT_EQ(s.Run(fd()), EINVAL);
  s = Submit(FLAXDRM_JOB_CALL, m_.root, m_.program);
  s.Bind(0, io_bo_, 0);
  s.Bind(1, io_bo_, 0);
  EXPECT_EQ(s.Run(fd()), EINVAL);
  s = Submit(FLAXDRM_JOB_CALL, m_.root, m_.program);
  s.Bind(0, io_bo_, 0);
  s.Bind(99, io_bo_, 0);
  EXPECT_EQ(s.Run(fd()), EINVAL);
  // unknown BO
  s = Submit(FLAXDRM_JOB_CALL, m_.root, m_.program);
  s.Bind(0, io_bo_, 0);
  s.Bind(4, io_bo_ + 1000, 0);
  EXPECT_EQ(s.Run(fd()), ENOENT);
  // offsets: y is 2x4 floats = 32 bytes
  s = Submit(FLAXDRM_JOB_CALL, m_.root, m_.program);
  s.Bind(0, io_bo_, 0);
  s.Bind(4, io_bo_, 4096 - 32);
  EXPECT_EQ(s.Run(fd()), ok());
  s = Submit(FLAXDRM_JOB_CALL, m_.root, m_.program);
  s.Bind(0, io_bo_, 0);
  s.Bind(4, io_bo_, 4096 - 31);
  EXPECT_EQ(s.Run(fd()), EINVAL);
  s = Submit(FLAXDRM_JOB_CALL, m_.root, m_.program);
  s.Bind(0, io_bo_, UINT64_MAX - 8);
  s.Bind(4, io_bo_, 0);
  EXPECT_EQ(s.Run(fd()), EINVAL);
}

TEST_F(IoctlSubmit, JobRootMustContainProgram) {
  uint32_t other_root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "MLP");
  Submit s = Call();
  s.args.module = other_root;
  EXPECT_EQ(s.Run(fd()), EINVAL);
  // a destroyed module makes the program unusable
  drm_flaxdrm_module_destroy d{};
  d.handle = m_.dense;
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_MODULE_DESTROY, &d), 0);
  EXPECT_EQ(Call().Run(fd()), ENOENT);
}

TEST_F(IoctlSubmit, RebindChangingShapeIsRefused) {
  auto k = VarArgs(m_.dense, m_.params_bo, 0, "params", "kernel", {kIn, 2});
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &k), 0);
  EXPECT_EQ(Call().Run(fd()), EINVAL);
  // same shape, another place: fine
  k = VarArgs(m_.dense, m_.params_bo, 512, "params", "kernel", {kIn, kOut});
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &k), 0);
  EXPECT_EQ(Call().Run(fd()), ok());
}

TEST_F(IoctlSubmit, MutableCollections) {
  // relu(x) written into the variable batch_stats/mean of the root
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "Stats");
  auto v = VarArgs(root, io_bo_, 2048, "batch_stats", "mean", {8});
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), 0);
  std::vector<drm_flaxdrm_tensor> tensors = {
      Tensor(FLAXDRM_TENSOR_INPUT, {8}),
      Tensor(FLAXDRM_TENSOR_VARIABLE, {8}, root, "batch_stats", "mean"),
  };
  std::vector<drm_flaxdrm_op> ops = {Op(FLAXDRM_OP_RELU, 0, {0}, {1})};
  ProgramResult r = ProgramCreate(fd(), root, tensors, ops);
  ASSERT_EQ(r.err, 0);

  Submit s(FLAXDRM_JOB_CALL, root, r.handle);
  s.Bind(0, io_bo_, 0);
  EXPECT_EQ(s.Run(fd()), EINVAL);  // Flax would raise: not mutable
  s.Mutable("params");
  EXPECT_EQ(s.Run(fd()), EINVAL);  // still not this collection
  s.Mutable("batch_stats");
  EXPECT_EQ(s.Run(fd()), ok());
  Submit all(FLAXDRM_JOB_CALL, root, r.handle);
  all.Bind(0, io_bo_, 0);
  all.args.flags = FLAXDRM_SUBMIT_MUTABLE_ALL;
  EXPECT_EQ(all.Run(fd()), ok());
  // a program that only reads variables needs no mutable list
  EXPECT_EQ(Call().Run(fd()), ok());
}

TEST_F(IoctlSubmit, Syncobjs) {
  uint32_t binary = 0, timeline = 0;
  ASSERT_EQ(drmSyncobjCreate(fd(), 0, &binary), 0);
  ASSERT_EQ(drmSyncobjCreate(fd(), 0, &timeline), 0);

  // unknown in-syncobj, and one of another file
  Submit s = Call();
  s.in_syncs.push_back({binary + 100, 0, 0});
  EXPECT_EQ(s.Run(fd()), ENOENT);
  uint32_t theirs = 0;
  ASSERT_EQ(drmSyncobjCreate(other(), 0, &theirs), 0);
  s = Call();
  s.in_syncs.push_back({theirs + 100, 0, 0});
  EXPECT_EQ(s.Run(fd()), ENOENT);
  // flags on a sync
  s = Call();
  s.in_syncs.push_back({binary, 1, 0});
  EXPECT_EQ(s.Run(fd()), EINVAL);
  // a binary syncobj without a fence cannot be waited on
  s = Call();
  s.in_syncs.push_back({binary, 0, 0});
  EXPECT_EQ(s.Run(fd()), EINVAL);
  // unknown out-syncobj, out flags, a point without a handle
  s = Call();
  s.args.out_sync.handle = binary + 100;
  EXPECT_EQ(s.Run(fd()), ENOENT);
  s = Call();
  s.args.out_sync.handle = binary;
  s.args.out_sync.flags = 1;
  EXPECT_EQ(s.Run(fd()), EINVAL);
  s = Call();
  s.args.out_sync.point = 3;
  EXPECT_EQ(s.Run(fd()), EINVAL);

  // a signalled in-fence is fine
  uint32_t signalled = 0;
  ASSERT_EQ(drmSyncobjCreate(fd(), DRM_SYNCOBJ_CREATE_SIGNALED, &signalled), 0);
  s = Call();
  s.in_syncs.push_back({signalled, 0, 0});
  s.args.out_sync.handle = binary;
  EXPECT_EQ(s.Run(fd()), ok());
  s = Call();
  s.args.out_sync.handle = timeline;
  s.args.out_sync.point = 7;
  EXPECT_EQ(s.Run(fd()), ok());
}

TEST_F(IoctlSubmit, NoEngineIsENODEV) {
  if (engine_)
    GTEST_SKIP() << "an engine is attached";
  EXPECT_EQ(Call().Run(fd()), ENODEV);
  Submit setup(FLAXDRM_JOB_SETUP, m_.root);
  EXPECT_EQ(setup.Run(fd()), ENODEV);
}

// ------------------------------------------------------------ engine ioctls

TEST_F(Ioctl, EngineIoctlsRefusedOnRenderNode) {
  drm_flaxdrm_engine_attach a{};
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_ENGINE_ATTACH, &a), EACCES);
  drm_flaxdrm_engine_fetch f{};
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f), EACCES);
  drm_flaxdrm_engine_complete c{};
  c.job_id = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EACCES);
}

TEST_F(Ioctl, EngineIoctlsNeedPrivilegeOnPrimaryNode) {
  if (geteuid() == 0)
    GTEST_SKIP() << "running as root";
  const Nodes &n = FindNodes();
  ASSERT_FALSE(n.primary.empty());
  Fd primary(open(n.primary.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_GE(primary.get(), 0) << n.primary << ": " << strerror(errno)
                              << " (the test user should be in group video)";
  drm_flaxdrm_engine_attach a{};
  EXPECT_EQ(Err(primary.get(), DRM_IOCTL_FLAXDRM_ENGINE_ATTACH, &a), EACCES);
  drm_flaxdrm_engine_fetch f{};
  EXPECT_EQ(Err(primary.get(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f), EACCES);
  drm_flaxdrm_engine_complete c{};
  c.job_id = 1;
  EXPECT_EQ(Err(primary.get(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EACCES);
  // client ioctls work on the primary node too
  drm_flaxdrm_get_param p{};
  p.param = FLAXDRM_PARAM_VERSION;
  EXPECT_EQ(Err(primary.get(), DRM_IOCTL_FLAXDRM_GET_PARAM, &p), 0);
}

// ------------------------------------------------------------ profiling

// the values of a perfmon; empty when GET_VALUES fails
std::vector<uint64_t> PerfmonValues(int fd, uint32_t handle, uint32_t count) {
  std::vector<uint64_t> v(count, ~0ull);
  drm_flaxdrm_perfmon_get_values g{};
  g.handle = handle;
  g.values = reinterpret_cast<uintptr_t>(v.data());
  g.num_values = count;
  if (Err(fd, DRM_IOCTL_FLAXDRM_PERFMON_GET_VALUES, &g))
    return {};
  return v;
}

int PerfmonCreate(int fd, const std::vector<uint32_t> &ids, uint32_t *handle) {
  drm_flaxdrm_perfmon_create c{};
  c.counters = reinterpret_cast<uintptr_t>(ids.data());
  c.num_counters = static_cast<uint32_t>(ids.size());
  int err = Err(fd, DRM_IOCTL_FLAXDRM_PERFMON_CREATE, &c);
  *handle = c.handle;
  return err;
}

int PerfmonDestroy(int fd, uint32_t handle) {
  drm_flaxdrm_perfmon_destroy d{};
  d.handle = handle;
  return Err(fd, DRM_IOCTL_FLAXDRM_PERFMON_DESTROY, &d);
}

// every counter, in id order
std::vector<uint32_t> AllCounters() {
  std::vector<uint32_t> ids;
  for (uint32_t i = 0; i < FLAXDRM_COUNTER_COUNT; i++)
    ids.push_back(i);
  return ids;
}

// The Dense model's work (see flaxdrm_rules.h): Dense 2*M*K*N plus M*N for
// the bias, relu one per element; bytes are the operands' sizes.
constexpr uint64_t kDenseFlops =
    2ull * kBatch * kIn * kOut + kBatch * kOut + kBatch * kOut;
constexpr uint64_t kDenseBytesRead =
    4ull * (kBatch * kIn + kIn * kOut + kOut) + 4ull * kBatch * kOut;
constexpr uint64_t kDenseBytesWritten = 2 * 4ull * kBatch * kOut;

using Perfmon = Ioctl;

TEST_F(Perfmon, CounterQuery) {
  ASSERT_EQ(GetParam(fd(), FLAXDRM_PARAM_NUM_COUNTERS),
            uint64_t{FLAXDRM_COUNTER_COUNT});
  for (uint32_t id = 0; id < FLAXDRM_COUNTER_COUNT; id++) {
    drm_flaxdrm_counter_query q{};
    memset(q.name, 'x', sizeof(q.name));
    q.id = id;
    ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_COUNTER_QUERY, &q), 0) << id;
    EXPECT_GT(strnlen(q.name, sizeof(q.name)), 0u) << id;
    EXPECT_LT(strnlen(q.name, sizeof(q.name)), sizeof(q.name)) << id;
    EXPECT_GT(strnlen(q.unit, sizeof(q.unit)), 0u) << id;
    EXPECT_LT(strnlen(q.unit, sizeof(q.unit)), sizeof(q.unit)) << id;
    EXPECT_GT(strnlen(q.description, sizeof(q.description)), 0u) << id;
    EXPECT_LT(strnlen(q.description, sizeof(q.description)),
              sizeof(q.description))
        << id;
    // zero-filled after the NUL
    size_t n = strlen(q.name);
    for (size_t i = n; i < sizeof(q.name); i++)
      EXPECT_EQ(q.name[i], 0) << id;
  }
  drm_flaxdrm_counter_query q{};
  q.id = FLAXDRM_COUNTER_FLOPS;
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_COUNTER_QUERY, &q), 0);
  EXPECT_STREQ(q.unit, "flop");
  q = {};
  q.id = FLAXDRM_COUNTER_COUNT;  // past the end
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_COUNTER_QUERY, &q), EINVAL);
  q = {};
  q.flags = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_COUNTER_QUERY, &q), EINVAL);
}

TEST_F(Perfmon, CreateRefusals) {
  uint32_t h = 0;
  EXPECT_EQ(PerfmonCreate(fd(), {}, &h), EINVAL);
  std::vector<uint32_t> many(FLAXDRM_MAX_PERFMON_COUNTERS + 1, 0);
  for (uint32_t i = 0; i < many.size(); i++)
    many[i] = i % FLAXDRM_COUNTER_COUNT;
  EXPECT_EQ(PerfmonCreate(fd(), many, &h), EINVAL);
  EXPECT_EQ(PerfmonCreate(fd(), {FLAXDRM_COUNTER_COUNT}, &h), EINVAL);
  EXPECT_EQ(PerfmonCreate(fd(), {0, 0xffffffffu}, &h), EINVAL);
  // each counter at most once
  EXPECT_EQ(PerfmonCreate(fd(), {FLAXDRM_COUNTER_FLOPS, 1,
                                 FLAXDRM_COUNTER_FLOPS}, &h),
            EINVAL);
  std::vector<uint32_t> ids = {0, 1};
  drm_flaxdrm_perfmon_create c{};
  c.counters = reinterpret_cast<uintptr_t>(ids.data());
  c.num_counters = 2;
  c.flags = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PERFMON_CREATE, &c), EINVAL);
  c.flags = 0;
  c.pad = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PERFMON_CREATE, &c), EINVAL);
  c.pad = 0;
  c.counters = 8;  // a bad pointer
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PERFMON_CREATE, &c), EFAULT);
  // the most counters a perfmon takes, every one of them
  EXPECT_EQ(PerfmonCreate(fd(), AllCounters(), &h), 0);
  EXPECT_NE(h, 0u);
  EXPECT_EQ(PerfmonDestroy(fd(), h), 0);
}

TEST_F(Perfmon, GetValuesAndDestroy) {
  uint32_t h = 0;
  ASSERT_EQ(PerfmonCreate(fd(), {FLAXDRM_COUNTER_FLOPS,
                                 FLAXDRM_COUNTER_JOBS_COMPLETED,
                                 FLAXDRM_COUNTER_ERRORS}, &h),
            0);
  EXPECT_EQ(PerfmonValues(fd(), h, 3), std::vector<uint64_t>(3, 0));
  // wrong count, flags, pad, bad pointer
  std::vector<uint64_t> v(4);
  drm_flaxdrm_perfmon_get_values g{};
  g.handle = h;
  g.values = reinterpret_cast<uintptr_t>(v.data());
  g.num_values = 2;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PERFMON_GET_VALUES, &g), EINVAL);
  g.num_values = 4;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PERFMON_GET_VALUES, &g), EINVAL);
  g.num_values = 3;
  g.flags = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PERFMON_GET_VALUES, &g), EINVAL);
  g.flags = 0;
  g.pad = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PERFMON_GET_VALUES, &g), EINVAL);
  g.pad = 0;
  g.values = 8;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PERFMON_GET_VALUES, &g), EFAULT);
  drm_flaxdrm_perfmon_destroy d{};
  d.handle = h;
  d.pad = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_PERFMON_DESTROY, &d), EINVAL);

  // another file does not see it
  EXPECT_TRUE(PerfmonValues(other(), h, 3).empty());
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(PerfmonDestroy(other(), h), ENOENT);

  EXPECT_EQ(PerfmonDestroy(fd(), h), 0);
  // use after destroy
  EXPECT_TRUE(PerfmonValues(fd(), h, 3).empty());
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(PerfmonDestroy(fd(), h), ENOENT);
  EXPECT_EQ(PerfmonDestroy(fd(), 0), ENOENT);
}

TEST_F(Perfmon, SubmitWithUnknownOrForeignPerfmon) {
  // ENOENT comes before ENODEV: no engine is needed
  DenseModel m = MakeDense(fd());
  uint32_t io_bo = BoCreate(fd(), 4096);
  uint32_t theirs = 0, mine = 0;
  ASSERT_EQ(PerfmonCreate(other(), {0}, &theirs), 0);
  ASSERT_EQ(PerfmonCreate(fd(), {0}, &mine), 0);
  ASSERT_EQ(PerfmonDestroy(fd(), mine), 0);
  for (uint32_t h : {theirs, mine, 12345u}) {
    Submit s(FLAXDRM_JOB_CALL, m.root, m.program);
    s.Bind(0, io_bo, 0);
    s.Bind(4, io_bo, 1024);
    s.args.perfmon = h;
    EXPECT_EQ(s.Run(fd()), ENOENT) << h;
    Submit setup(FLAXDRM_JOB_SETUP, m.root);
    setup.args.perfmon = h;
    EXPECT_EQ(setup.Run(fd()), ENOENT) << h;
  }
}

using JobQuery = Ioctl;

TEST_F(JobQuery, Refusals) {
  drm_flaxdrm_job_query q{};
  q.job_id = 0;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), ENOENT);
  q.job_id = ~0ull;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), ENOENT);
  q.job_id = 1;
  q.flags = 1;
  EXPECT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), EINVAL);
}

// ------------------------------------------------------------ EngineJobs

class EngineJobs : public ::testing::Test {
 protected:
  void SetUp() override {
    const char *no_engine = getenv("FLAXDRM_TEST_NO_ENGINE");
    bool attached = EngineAttached();
    if (!attached && no_engine && std::string(no_engine) == "1")
      GTEST_SKIP() << "no engine (FLAXDRM_TEST_NO_ENGINE=1)";
    ASSERT_FALSE(FindNodes().render.empty()) << "no flaxdrm render node";
    ASSERT_TRUE(attached) << "no engine attached (set FLAXDRM_TEST_NO_ENGINE=1 "
                             "to skip the EngineJobs tests)";
    fd_ = OpenRender();
    ASSERT_GE(fd_.get(), 0);
  }
  int fd() const { return fd_.get(); }

  Fd fd_;
};

// Fills the Dense model's parameters and input, returns the expected y.
std::vector<float> FillDense(int fd, const DenseModel &m, uint32_t io_bo) {
  auto *params = static_cast<float *>(BoMap(fd, m.params_bo, 4096));
  auto *io = static_cast<float *>(BoMap(fd, io_bo, 4096));
  EXPECT_NE(params, nullptr);
  EXPECT_NE(io, nullptr);
  if (!params || !io)
    return {};
  float *kernel = params, *bias = params + 64, *x = io, *y = io + 256;
  for (uint32_t i = 0; i < kIn * kOut; i++)
    kernel[i] = 0.25f * static_cast<float>(static_cast<int>(i) - 5);
  for (uint32_t i = 0; i < kOut; i++)
    bias[i] = 0.5f - 0.25f * static_cast<float>(i);
  for (uint32_t i = 0; i < kBatch * kIn; i++)
    x[i] = static_cast<float>(i) - 2.0f;
  for (uint32_t i = 0; i < kBatch * kOut; i++)
    y[i] = -123.0f;
  std::vector<float> want(kBatch * kOut);
  for (uint32_t b = 0; b < kBatch; b++)
    for (uint32_t o = 0; o < kOut; o++) {
      float acc = bias[o];
      for (uint32_t i = 0; i < kIn; i++)
        acc += x[b * kIn + i] * kernel[i * kOut + o];
      want[b * kOut + o] = acc > 0 ? acc : 0;
    }
  munmap(params, 4096);
  munmap(io, 4096);
  return want;
}

std::vector<float> ReadY(int fd, uint32_t io_bo) {
  auto *io = static_cast<float *>(BoMap(fd, io_bo, 4096));
  if (!io)
    return {};
  std::vector<float> y(io + 256, io + 256 + kBatch * kOut);
  munmap(io, 4096);
  return y;
}

TEST_F(EngineJobs, SetupCallCleanup) {
  DenseModel m = MakeDense(fd());
  uint32_t io_bo = BoCreate(fd(), 4096);
  std::vector<float> want = FillDense(fd(), m, io_bo);
  uint32_t sync = 0;
  ASSERT_EQ(drmSyncobjCreate(fd(), 0, &sync), 0);

  Submit setup(FLAXDRM_JOB_SETUP, m.root);
  setup.args.out_sync.handle = sync;
  ASSERT_EQ(setup.Run(fd()), 0);
  uint64_t setup_id = setup.args.job_id;
  EXPECT_NE(setup_id, 0u);
  ASSERT_TRUE(WaitSyncobj(fd(), sync));
  EXPECT_EQ(FenceStatus(fd(), sync), 1);

  Submit call(FLAXDRM_JOB_CALL, m.root, m.program);
  call.Bind(0, io_bo, 0);
  call.Bind(4, io_bo, 1024);
  call.args.out_sync.handle = sync;
  ASSERT_EQ(call.Run(fd()), 0);
  EXPECT_GT(call.args.job_id, setup_id);
  ASSERT_TRUE(WaitSyncobj(fd(), sync));
  EXPECT_EQ(FenceStatus(fd(), sync), 1);
  std::vector<float> y = ReadY(fd(), io_bo);
  ASSERT_EQ(y.size(), want.size());
  for (size_t i = 0; i < y.size(); i++)
    EXPECT_NEAR(y[i], want[i], 1e-4) << i;

  Submit cleanup(FLAXDRM_JOB_CLEANUP, m.root);
  cleanup.args.out_sync.handle = sync;
  ASSERT_EQ(cleanup.Run(fd()), 0);
  ASSERT_TRUE(WaitSyncobj(fd(), sync));
  EXPECT_EQ(FenceStatus(fd(), sync), 1);
}

TEST_F(EngineJobs, TimelineChainAndInFences) {
  DenseModel m = MakeDense(fd());
  uint32_t io_bo = BoCreate(fd(), 4096);
  std::vector<float> want = FillDense(fd(), m, io_bo);
  uint32_t tl = 0, done = 0;
  ASSERT_EQ(drmSyncobjCreate(fd(), 0, &tl), 0);
  ASSERT_EQ(drmSyncobjCreate(fd(), 0, &done), 0);

  Submit setup(FLAXDRM_JOB_SETUP, m.root);
  setup.args.out_sync = {tl, 0, 1};
  ASSERT_EQ(setup.Run(fd()), 0);
  // the call waits for point 1 and signals point 2; the cleanup waits for 2
  Submit call(FLAXDRM_JOB_CALL, m.root, m.program);
  call.Bind(0, io_bo, 0);
  call.Bind(4, io_bo, 1024);
  call.in_syncs.push_back({tl, 0, 1});
  call.args.out_sync = {tl, 0, 2};
  ASSERT_EQ(call.Run(fd()), 0);
  Submit cleanup(FLAXDRM_JOB_CLEANUP, m.root);
  cleanup.in_syncs.push_back({tl, 0, 2});
  cleanup.args.out_sync.handle = done;
  ASSERT_EQ(cleanup.Run(fd()), 0);

  ASSERT_TRUE(WaitSyncobj(fd(), done));
  EXPECT_EQ(FenceStatus(fd(), done), 1);
  uint64_t point = 0;
  ASSERT_EQ(drmSyncobjQuery(fd(), &tl, &point, 1), 0);
  EXPECT_EQ(point, 2u);
  std::vector<float> y = ReadY(fd(), io_bo);
  ASSERT_EQ(y.size(), want.size());
  for (size_t i = 0; i < y.size(); i++)
    EXPECT_NEAR(y[i], want[i], 1e-4) << i;
}

TEST_F(EngineJobs, ManyJobsSignalInOrder) {
  DenseModel m = MakeDense(fd());
  uint32_t io_bo = BoCreate(fd(), 4096);
  FillDense(fd(), m, io_bo);
  uint32_t tl = 0;
  ASSERT_EQ(drmSyncobjCreate(fd(), 0, &tl), 0);
  Submit setup(FLAXDRM_JOB_SETUP, m.root);
  ASSERT_EQ(setup.Run(fd()), 0);
  uint64_t last_id = setup.args.job_id;
  for (uint64_t i = 1; i <= 16; i++) {
    Submit call(FLAXDRM_JOB_CALL, m.root, m.program);
    call.Bind(0, io_bo, 0);
    call.Bind(4, io_bo, 1024);
    call.args.out_sync = {tl, 0, i};
    ASSERT_EQ(call.Run(fd()), 0);
    EXPECT_GT(call.args.job_id, last_id);
    last_id = call.args.job_id;
  }
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t abs = ts.tv_sec * 1000000000ll + ts.tv_nsec + 120000000000ll;
  uint64_t point = 16;
  ASSERT_EQ(drmSyncobjTimelineWait(fd(), &tl, &point, 1, abs,
                                   DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL, nullptr),
            0);
  ASSERT_EQ(drmSyncobjQuery(fd(), &tl, &point, 1), 0);
  EXPECT_EQ(point, 16u);
}

TEST_F(EngineJobs, MutableVariableWritten) {
  uint32_t root = ModuleCreate(fd(), 0, FLAXDRM_KIND_MODULE, "", "Stats");
  uint32_t bo = BoCreate(fd(), 4096);
  auto v = VarArgs(root, bo, 2048, "batch_stats", "mean", {8});
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), 0);
  std::vector<drm_flaxdrm_tensor> tensors = {
      Tensor(FLAXDRM_TENSOR_INPUT, {8}),
      Tensor(FLAXDRM_TENSOR_VARIABLE, {8}, root, "batch_stats", "mean"),
  };
  std::vector<drm_flaxdrm_op> ops = {Op(FLAXDRM_OP_RELU, 0, {0}, {1})};
  ProgramResult r = ProgramCreate(fd(), root, tensors, ops);
  ASSERT_EQ(r.err, 0);
  auto *p = static_cast<float *>(BoMap(fd(), bo, 4096));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 8; i++) {
    p[i] = static_cast<float>(i) - 4.0f;
    p[512 + i] = 99.0f;
  }
  uint32_t sync = 0;
  ASSERT_EQ(drmSyncobjCreate(fd(), 0, &sync), 0);
  Submit setup(FLAXDRM_JOB_SETUP, root);
  ASSERT_EQ(setup.Run(fd()), 0);
  Submit call(FLAXDRM_JOB_CALL, root, r.handle);
  call.Bind(0, bo, 0);
  call.Mutable("batch_stats");
  call.args.out_sync.handle = sync;
  ASSERT_EQ(call.Run(fd()), 0);
  ASSERT_TRUE(WaitSyncobj(fd(), sync));
  EXPECT_EQ(FenceStatus(fd(), sync), 1);
  for (int i = 0; i < 8; i++)
    EXPECT_EQ(p[512 + i], i > 4 ? static_cast<float>(i) - 4.0f : 0.0f) << i;
  munmap(p, 4096);
}

TEST_F(EngineJobs, CloseWithJobsInFlight) {
  // closing the file right after submitting must not hang or leak: the
  // jobs keep their references and finish
  for (int round = 0; round < 3; round++) {
    Fd f = OpenRender();
    ASSERT_GE(f.get(), 0);
    DenseModel m = MakeDense(f.get());
    uint32_t io_bo = BoCreate(f.get(), 4096);
    FillDense(f.get(), m, io_bo);
    Submit setup(FLAXDRM_JOB_SETUP, m.root);
    ASSERT_EQ(setup.Run(f.get()), 0);
    for (int i = 0; i < 4; i++) {
      Submit call(FLAXDRM_JOB_CALL, m.root, m.program);
      call.Bind(0, io_bo, 0);
      call.Bind(4, io_bo, 1024);
      ASSERT_EQ(call.Run(f.get()), 0);
    }
  }
  EXPECT_TRUE(EngineAttached());
}

TEST_F(EngineJobs, PerfmonCountsCalls) {
  DenseModel m = MakeDense(fd());
  uint32_t io_bo = BoCreate(fd(), 4096);
  FillDense(fd(), m, io_bo);
  std::vector<uint32_t> ids = AllCounters();
  uint32_t pm = 0;
  ASSERT_EQ(PerfmonCreate(fd(), ids, &pm), 0);
  uint32_t sync = 0;
  ASSERT_EQ(drmSyncobjCreate(fd(), 0, &sync), 0);

  // setup outside the perfmon: only the calls count
  Submit setup(FLAXDRM_JOB_SETUP, m.root);
  setup.args.out_sync.handle = sync;
  ASSERT_EQ(setup.Run(fd()), 0);
  ASSERT_TRUE(WaitSyncobj(fd(), sync));

  constexpr int kCalls = 3;
  uint64_t wall_ns = 0, last_id = 0;
  std::vector<uint64_t> prev(ids.size(), 0);
  for (int i = 0; i < kCalls; i++) {
    Submit call(FLAXDRM_JOB_CALL, m.root, m.program);
    call.Bind(0, io_bo, 0);
    call.Bind(4, io_bo, 1024);
    call.args.out_sync.handle = sync;
    call.args.perfmon = pm;
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(call.Run(fd()), 0);
    ASSERT_TRUE(WaitSyncobj(fd(), sync));
    wall_ns += static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(
            std::chrono::steady_clock::now() - t0)
            .count());
    EXPECT_EQ(FenceStatus(fd(), sync), 1);
    last_id = call.args.job_id;
    std::vector<uint64_t> v = PerfmonValues(fd(), pm, ids.size());
    ASSERT_EQ(v.size(), ids.size());
    for (size_t c = 0; c < v.size(); c++)
      EXPECT_GE(v[c], prev[c]) << "counter " << c << " decreased";
    prev = v;
  }
  const std::vector<uint64_t> &v = prev;
  EXPECT_EQ(v[FLAXDRM_COUNTER_JOBS_COMPLETED], uint64_t{kCalls});
  EXPECT_EQ(v[FLAXDRM_COUNTER_ERRORS], 0u);
  EXPECT_EQ(v[FLAXDRM_COUNTER_OPS_EXECUTED], 2u * kCalls);
  EXPECT_EQ(v[FLAXDRM_COUNTER_FLOPS], kDenseFlops * kCalls);
  EXPECT_EQ(v[FLAXDRM_COUNTER_BYTES_READ], kDenseBytesRead * kCalls);
  EXPECT_EQ(v[FLAXDRM_COUNTER_BYTES_WRITTEN], kDenseBytesWritten * kCalls);
  EXPECT_GT(v[FLAXDRM_COUNTER_ENGINE_EXEC_NS], 0u);
  EXPECT_LE(v[FLAXDRM_COUNTER_ENGINE_EXEC_NS], wall_ns);
  EXPECT_GT(v[FLAXDRM_COUNTER_QUEUE_WAIT_NS], 0u);
  EXPECT_LE(v[FLAXDRM_COUNTER_QUEUE_WAIT_NS], wall_ns);
  // lavapipe has pipeline statistics: the engine reports invocations
  EXPECT_GT(v[FLAXDRM_COUNTER_SHADER_INVOCATIONS], 0u);

  // the last call's record, with one timing per op
  std::vector<drm_flaxdrm_op_timing> t(8);
  drm_flaxdrm_job_query q{};
  q.job_id = last_id;
  q.op_timings = reinterpret_cast<uintptr_t>(t.data());
  q.num_op_timings = static_cast<uint32_t>(t.size());
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), 0);
  EXPECT_EQ(q.status, 0);
  EXPECT_EQ(q.op, uint32_t{FLAXDRM_JOB_CALL});
  EXPECT_EQ(q.flops, kDenseFlops);
  EXPECT_EQ(q.bytes_read, kDenseBytesRead);
  EXPECT_EQ(q.bytes_written, kDenseBytesWritten);
  EXPECT_GT(q.exec_ns, 0u);
  EXPECT_GT(q.queue_ns, 0u);
  EXPECT_LE(q.exec_ns, wall_ns);
  EXPECT_GT(q.shader_invocations, 0u);
  ASSERT_EQ(q.num_op_timings, 2u);
  for (uint32_t i = 0; i < 2; i++) {
    EXPECT_EQ(t[i].op_index, i);
    EXPECT_EQ(t[i].opcode, m.ops[i].opcode);
    EXPECT_LE(t[i].start_ns, t[i].end_ns) << i;
  }
  // the setup is in the history too, without timings
  q = {};
  q.job_id = setup.args.job_id;
  ASSERT_EQ(Err(fd(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), 0);
  EXPECT_EQ(q.op, uint32_t{FLAXDRM_JOB_SETUP});
  EXPECT_EQ(q.num_op_timings, 0u);
  EXPECT_EQ(q.flops, 0u);

  // fdinfo counts every finished job of the file
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd()));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("flaxdrm-jobs-completed:\t" + std::to_string(kCalls + 1)),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("flaxdrm-jobs-failed:\t0"), std::string::npos) << text;
  EXPECT_EQ(PerfmonDestroy(fd(), pm), 0);
}

// ------------------------------------------------------------ EngineLink

// The test plays the engine: root, primary node, no other engine.
class EngineLink : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0)
      GTEST_SKIP() << "needs root (the engine's privilege)";
    ASSERT_FALSE(FindNodes().render.empty()) << "no flaxdrm render node";
    if (EngineAttached())
      GTEST_SKIP() << "an engine is already attached";
    engine_ = Fd(open(FindNodes().primary.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_GE(engine_.get(), 0);
    drm_flaxdrm_engine_attach a{};
    ASSERT_EQ(Err(engine_.get(), DRM_IOCTL_FLAXDRM_ENGINE_ATTACH, &a), 0);
    client_ = OpenRender();
    ASSERT_GE(client_.get(), 0);
    m_ = MakeDense(client());
    io_bo_ = BoCreate(client(), 4096);
  }
  void TearDown() override { SetTimeout(saved_timeout_); }

  int engine() const { return engine_.get(); }
  int client() const { return client_.get(); }

  uint64_t SubmitCall(uint32_t out_sync = 0) {
    Submit call(FLAXDRM_JOB_CALL, m_.root, m_.program);
    call.Bind(0, io_bo_, 0);
    call.Bind(4, io_bo_, 1024);
    call.args.out_sync.handle = out_sync;
    EXPECT_EQ(call.Run(client()), 0);
    return call.args.job_id;
  }

  // Fetches one job (waits up to timeout_ms); returns its id, 0 for none.
  uint64_t Fetch(std::vector<uint8_t> *buf, uint32_t timeout_ms = 5000) {
    buf->assign(1 << 16, 0);
    drm_flaxdrm_engine_fetch f{};
    f.timeout_ms = timeout_ms;
    f.buffer = reinterpret_cast<uintptr_t>(buf->data());
    f.buffer_size = static_cast<uint32_t>(buf->size());
    EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f), 0);
    buf->resize(f.buffer_size);
    return f.job_id;
  }

  int Complete(uint64_t job_id, int32_t status) {
    drm_flaxdrm_engine_complete c{};
    c.job_id = job_id;
    c.status = status;
    c.exec_ns = 1000;
    return Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c);
  }

  static void SetTimeout(unsigned ms) {
    if (!ms)
      return;
    std::ofstream("/sys/module/flaxdrm/parameters/job_timeout_ms") << ms;
  }
  unsigned GetTimeout() {
    return static_cast<unsigned>(
        GetParam(client(), FLAXDRM_PARAM_JOB_TIMEOUT_MS));
  }

  Fd engine_, client_;
  DenseModel m_;
  uint32_t io_bo_ = 0;
  unsigned saved_timeout_ = 0;
};

TEST_F(EngineLink, AttachRules) {
  EXPECT_EQ(GetParam(client(), FLAXDRM_PARAM_ENGINE_ATTACHED), 1u);
  // one engine at a time
  Fd second(open(FindNodes().primary.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_GE(second.get(), 0);
  drm_flaxdrm_engine_attach a{};
  EXPECT_EQ(Err(second.get(), DRM_IOCTL_FLAXDRM_ENGINE_ATTACH, &a), EBUSY);
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_ATTACH, &a), EBUSY);
  a.flags = 1;
  EXPECT_EQ(Err(second.get(), DRM_IOCTL_FLAXDRM_ENGINE_ATTACH, &a), EINVAL);
  a = {};
  a.pad = 1;
  EXPECT_EQ(Err(second.get(), DRM_IOCTL_FLAXDRM_ENGINE_ATTACH, &a), EINVAL);
  // a file that did not attach cannot fetch or complete
  drm_flaxdrm_engine_fetch f{};
  EXPECT_EQ(Err(second.get(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f), EPERM);
  drm_flaxdrm_engine_complete c{};
  c.job_id = 1;
  EXPECT_EQ(Err(second.get(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EPERM);
  // fetch and complete argument checks
  f = {};
  f.flags = 1;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f), EINVAL);
  f = {};
  f.pad = 1;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f), EINVAL);
  c = {};
  c.job_id = 1;
  c.flags = 1;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EINVAL);
  c = {};
  c.job_id = 1;
  c.reserved = 1;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EINVAL);
  c = {};
  c.job_id = 1;
  c.status = 5;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EINVAL);
  EXPECT_EQ(Complete(12345678, 0), ENOENT);
  // nothing queued: a poll returns no job
  std::vector<uint8_t> buf;
  EXPECT_EQ(Fetch(&buf, 0), 0u);
  EXPECT_EQ(Fetch(&buf, 50), 0u);
}

TEST_F(EngineLink, FetchRunComplete) {
  std::vector<float> want = FillDense(client(), m_, io_bo_);
  uint32_t sync = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &sync), 0);
  uint64_t id = SubmitCall(sync);
  ASSERT_NE(id, 0u);

  // too small a buffer: ENOSPC, the size needed, the job stays queued
  size_t need = sizeof(drm_flaxdrm_engine_job) +
                5 * sizeof(drm_flaxdrm_engine_tensor) +
                2 * sizeof(drm_flaxdrm_op);
  std::vector<uint8_t> small(16);
  drm_flaxdrm_engine_fetch f{};
  f.timeout_ms = 5000;
  f.buffer = reinterpret_cast<uintptr_t>(small.data());
  f.buffer_size = 16;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f), ENOSPC);
  EXPECT_EQ(f.buffer_size, need);
  // a bad buffer: EFAULT, still queued
  f.buffer = 8;
  f.buffer_size = 1 << 16;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f), EFAULT);

  std::vector<uint8_t> buf;
  ASSERT_EQ(Fetch(&buf), id);
  ASSERT_EQ(buf.size(), need);
  auto *job = reinterpret_cast<drm_flaxdrm_engine_job *>(buf.data());
  auto *et = reinterpret_cast<drm_flaxdrm_engine_tensor *>(job + 1);
  auto *ops = reinterpret_cast<drm_flaxdrm_op *>(et + job->num_tensors);
  EXPECT_EQ(job->job_id, id);
  EXPECT_EQ(job->op, uint32_t{FLAXDRM_JOB_CALL});
  EXPECT_EQ(job->module, m_.root);
  EXPECT_NE(job->context, 0u);
  ASSERT_EQ(job->num_tensors, 5u);
  ASSERT_EQ(job->num_ops, 2u);
  EXPECT_EQ(ops[0].opcode, uint32_t{FLAXDRM_OP_DENSE});
  EXPECT_EQ(ops[1].opcode, uint32_t{FLAXDRM_OP_RELU});
  // x and y share one BO: one handle; kernel and bias share another
  EXPECT_NE(et[0].bo, 0u);
  EXPECT_EQ(et[0].bo, et[4].bo);
  EXPECT_NE(et[1].bo, 0u);
  EXPECT_EQ(et[1].bo, et[2].bo);
  EXPECT_NE(et[0].bo, et[1].bo);
  EXPECT_EQ(et[3].bo, 0u);  // TEMP
  EXPECT_EQ(et[0].writable, 0u);
  EXPECT_EQ(et[1].writable, 0u);
  EXPECT_EQ(et[4].writable, 1u);
  EXPECT_EQ(et[4].offset, 1024u);
  EXPECT_EQ(et[2].offset, 256u);
  EXPECT_EQ(et[4].size, kBatch * kOut * 4u);
  EXPECT_NE(et[1].var_id, 0u);
  EXPECT_NE(et[1].var_id, et[2].var_id);
  EXPECT_EQ(et[1].var_generation, 1u);
  EXPECT_EQ(et[1].desc.kind, uint32_t{FLAXDRM_TENSOR_VARIABLE});
  EXPECT_STREQ(et[1].desc.name, "kernel");

  // run it like the engine: map the BOs through the engine's handles
  auto *io = static_cast<float *>(BoMap(engine(), et[0].bo, 4096));
  auto *params = static_cast<float *>(BoMap(engine(), et[1].bo, 4096));
  ASSERT_NE(io, nullptr);
  ASSERT_NE(params, nullptr);
  const float *x = io, *kernel = params, *bias = params + 64;
  float *y = io + 256;
  for (uint32_t b = 0; b < kBatch; b++)
    for (uint32_t o = 0; o < kOut; o++) {
      float acc = bias[o];
      for (uint32_t i = 0; i < kIn; i++)
        acc += x[b * kIn + i] * kernel[i * kOut + o];
      y[b * kOut + o] = acc > 0 ? acc : 0;
    }
  munmap(io, 4096);
  munmap(params, 4096);

  EXPECT_EQ(FenceStatus(client(), sync), 0);  // still pending
  ASSERT_EQ(Complete(id, 0), 0);
  EXPECT_EQ(Complete(id, 0), ENOENT);  // once only
  ASSERT_TRUE(WaitSyncobj(client(), sync, 10000));
  EXPECT_EQ(FenceStatus(client(), sync), 1);
  std::vector<float> got = ReadY(client(), io_bo_);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); i++)
    EXPECT_FLOAT_EQ(got[i], want[i]) << i;
  // the engine's handles are gone after COMPLETE
  drm_flaxdrm_bo_mmap_offset mo{};
  mo.handle = et[0].bo;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_BO_MMAP_OFFSET, &mo), ENOENT);
}

TEST_F(EngineLink, SetupListsSubtreeVariables) {
  // a second Dense under a Block, plus one variable rebound twice
  uint32_t block = ModuleCreate(client(), m_.root, FLAXDRM_KIND_MODULE, "",
                                "Block");
  uint32_t d2 = ModuleCreate(client(), block, FLAXDRM_KIND_DENSE);
  auto v = VarArgs(d2, m_.params_bo, 512, "params", "kernel", {2, 2});
  ASSERT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), 0);
  ASSERT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_VAR_BIND, &v), 0);
  Submit setup(FLAXDRM_JOB_SETUP, m_.root);
  ASSERT_EQ(setup.Run(client()), 0);
  std::vector<uint8_t> buf;
  ASSERT_EQ(Fetch(&buf), setup.args.job_id);
  auto *job = reinterpret_cast<drm_flaxdrm_engine_job *>(buf.data());
  auto *et = reinterpret_cast<drm_flaxdrm_engine_tensor *>(job + 1);
  EXPECT_EQ(job->op, uint32_t{FLAXDRM_JOB_SETUP});
  EXPECT_EQ(job->num_ops, 0u);
  ASSERT_EQ(job->num_tensors, 3u);
  int found = 0;
  for (uint32_t i = 0; i < 3; i++) {
    EXPECT_EQ(et[i].desc.kind, uint32_t{FLAXDRM_TENSOR_VARIABLE});
    EXPECT_EQ(et[i].writable, 0u);
    if (et[i].desc.module == d2) {
      found++;
      EXPECT_EQ(et[i].var_generation, 2u);
      EXPECT_EQ(et[i].offset, 512u);
      EXPECT_EQ(et[i].size, 16u);
    }
  }
  EXPECT_EQ(found, 1);
  ASSERT_EQ(Complete(setup.args.job_id, 0), 0);
}

TEST_F(EngineLink, ErrorStatusAndInOrderSignalling) {
  uint32_t s1 = 0, s2 = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s1), 0);
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s2), 0);
  uint64_t id1 = SubmitCall(s1);
  uint64_t id2 = SubmitCall(s2);
  std::vector<uint8_t> buf;
  ASSERT_EQ(Fetch(&buf), id1);
  ASSERT_EQ(Fetch(&buf), id2);
  // the second completes first: its fence waits for the first's
  ASSERT_EQ(Complete(id2, 0), 0);
  usleep(100000);
  EXPECT_EQ(FenceStatus(client(), s2), 0);
  ASSERT_EQ(Complete(id1, -EIO), 0);
  ASSERT_TRUE(WaitSyncobj(client(), s2, 10000));
  EXPECT_EQ(FenceStatus(client(), s1), -EIO);
  EXPECT_EQ(FenceStatus(client(), s2), 1);
}

TEST_F(EngineLink, Timeout) {
  saved_timeout_ = GetTimeout();
  SetTimeout(300);
  EXPECT_EQ(GetTimeout(), 300u);
  uint32_t s1 = 0, s2 = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s1), 0);
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s2), 0);
  // one job fetched and never completed, one never fetched
  uint64_t id1 = SubmitCall(s1);
  std::vector<uint8_t> buf;
  ASSERT_EQ(Fetch(&buf), id1);
  SubmitCall(s2);
  ASSERT_TRUE(WaitSyncobj(client(), s1, 20000));
  ASSERT_TRUE(WaitSyncobj(client(), s2, 20000));
  EXPECT_EQ(FenceStatus(client(), s1), -ETIMEDOUT);
  EXPECT_EQ(FenceStatus(client(), s2), -ETIMEDOUT);
  // forgotten: a late COMPLETE is unknown, nothing left to fetch
  EXPECT_EQ(Complete(id1, 0), ENOENT);
  EXPECT_EQ(Fetch(&buf, 0), 0u);
  EXPECT_EQ(GetParam(client(), FLAXDRM_PARAM_ENGINE_ATTACHED), 1u);
}

TEST_F(EngineLink, FetchIntoABadBufferKeepsTheJob) {
  // FETCH copies the job out after taking it off the queue; a buffer it
  // cannot write puts the job back at the head, without handles
  uint32_t s1 = 0, s2 = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s1), 0);
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s2), 0);
  uint64_t id1 = SubmitCall(s1);
  uint64_t id2 = SubmitCall(s2);
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  auto *pages = static_cast<uint8_t *>(mmap(nullptr, 2 * page,
                                            PROT_READ | PROT_WRITE,
                                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(pages, MAP_FAILED);
  ASSERT_EQ(mprotect(pages + page, page, PROT_NONE), 0);
  struct Case {
    const char *what;
    uintptr_t buffer;
  } cases[] = {
      {"unmapped", 8},
      // the copy starts and faults at the page boundary
      {"straddling", reinterpret_cast<uintptr_t>(pages + page - 64)},
      {"inaccessible", reinterpret_cast<uintptr_t>(pages + page)},
  };
  for (const Case &c : cases) {
    drm_flaxdrm_engine_fetch f{};
    f.timeout_ms = 5000;
    f.buffer = c.buffer;
    f.buffer_size = 1 << 16;
    EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f), EFAULT)
        << c.what;
    EXPECT_EQ(f.job_id, 0u) << c.what;
    // the engine file has no handle of the job (the fresh file's first
    // handles would be 1 and 2)
    for (uint32_t h = 1; h <= 4; h++) {
      drm_flaxdrm_bo_mmap_offset mo{};
      mo.handle = h;
      EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_BO_MMAP_OFFSET, &mo), ENOENT)
          << c.what << " handle " << h;
    }
    // the job is neither lost nor finished
    EXPECT_EQ(FenceStatus(client(), s1), 0) << c.what;
    drm_flaxdrm_job_query q{};
    q.job_id = id1;
    EXPECT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), EBUSY)
        << c.what;
  }
  munmap(pages, 2 * page);

  // still first in line, then the one behind it; both run normally
  std::vector<uint8_t> buf;
  ASSERT_EQ(Fetch(&buf), id1);
  auto *et = reinterpret_cast<drm_flaxdrm_engine_tensor *>(
      buf.data() + sizeof(drm_flaxdrm_engine_job));
  EXPECT_NE(et[0].bo, 0u);
  ASSERT_EQ(Fetch(&buf), id2);
  ASSERT_EQ(Complete(id1, 0), 0);
  ASSERT_EQ(Complete(id2, 0), 0);
  ASSERT_TRUE(WaitSyncobj(client(), s2, 10000));
  EXPECT_EQ(FenceStatus(client(), s1), 1);
  EXPECT_EQ(FenceStatus(client(), s2), 1);
  // and the file counts them as completed, not failed
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(client()));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("flaxdrm-jobs-failed:\t0"), std::string::npos) << text;
}

TEST_F(EngineLink, CompleteRacingTheTimeoutFinishesTheJobOnce) {
  // COMPLETE issued around the moment the timer fires: exactly one of
  // them finishes the job, and the client sees that one's status
  saved_timeout_ = GetTimeout();
  const unsigned timeout_ms = 100;
  SetTimeout(timeout_ms);
  uint32_t sync = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &sync), 0);
  std::vector<uint8_t> buf;
  // submits and fetches a job; false if a slow guest let it time out
  // while still queued (then it failed with -ETIMEDOUT, not handed out)
  auto submit_and_fetch = [&](int i, uint64_t *id) {
    *id = SubmitCall(sync);
    uint64_t fetched = Fetch(&buf);
    if (fetched == *id)
      return true;
    EXPECT_EQ(fetched, 0u) << i;
    EXPECT_TRUE(WaitSyncobj(client(), sync, 20000)) << i;
    EXPECT_EQ(FenceStatus(client(), sync), -ETIMEDOUT) << i;
    return false;
  };
  int completed = 0, timed_out = 0;
  for (int i = 0; i < 40; i++) {
    uint64_t id = 0;
    if (!submit_and_fetch(i, &id))
      continue;
    // from half the timeout to one and a half times it
    usleep(timeout_ms * 1000 / 2 + (i % 11) * timeout_ms * 100);
    int err = Complete(id, 0);
    ASSERT_TRUE(WaitSyncobj(client(), sync, 20000)) << i;
    int status = FenceStatus(client(), sync);
    if (err == 0) {
      EXPECT_EQ(status, 1) << i;
      completed++;
    } else {
      EXPECT_EQ(err, ENOENT) << i;
      EXPECT_EQ(status, -ETIMEDOUT) << i;
      timed_out++;
    }
    // once finished, it is finished: a second COMPLETE is unknown
    EXPECT_EQ(Complete(id, 0), ENOENT) << i;
  }
  printf("COMPLETE won %d times, the timeout %d times\n", completed,
         timed_out);

  // the engine dying around the timeout: -ENODEV or -ETIMEDOUT, and the
  // timer deleting the job's handles does not outlive the engine's file
  for (int i = 0; i < 10; i++) {
    uint64_t id = 0;
    if (!submit_and_fetch(i, &id))
      continue;
    usleep(timeout_ms * 1000 / 2 + (i % 11) * timeout_ms * 100);
    engine_.reset();
    ASSERT_TRUE(WaitSyncobj(client(), sync, 20000)) << i;
    int status = FenceStatus(client(), sync);
    EXPECT_TRUE(status == -ENODEV || status == -ETIMEDOUT)
        << i << " " << status;
    engine_ = Fd(open(FindNodes().primary.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_GE(engine_.get(), 0);
    drm_flaxdrm_engine_attach a{};
    ASSERT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_ATTACH, &a), 0);
  }
}

TEST_F(EngineLink, ConcurrentFetchesHandOutEachJobOnce) {
  // two engine threads fetching from one queue: every job once, in order
  const int kJobs = 24;
  uint32_t tl = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &tl), 0);
  std::vector<uint64_t> ids;
  for (uint64_t i = 1; i <= kJobs; i++) {
    Submit call(FLAXDRM_JOB_CALL, m_.root, m_.program);
    call.Bind(0, io_bo_, 0);
    call.Bind(4, io_bo_, 1024);
    call.args.out_sync = {tl, 0, i};
    ASSERT_EQ(call.Run(client()), 0);
    ids.push_back(call.args.job_id);
  }
  std::vector<uint64_t> got[2];
  auto fetcher = [&](int which) {
    std::vector<uint8_t> buf(1 << 16);
    for (;;) {
      drm_flaxdrm_engine_fetch f{};
      f.timeout_ms = 1000;
      f.buffer = reinterpret_cast<uintptr_t>(buf.data());
      f.buffer_size = static_cast<uint32_t>(buf.size());
      if (Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f) || !f.job_id)
        return;
      got[which].push_back(f.job_id);
      EXPECT_EQ(Complete(f.job_id, 0), 0);
    }
  };
  std::thread a(fetcher, 0), b(fetcher, 1);
  a.join();
  b.join();
  std::vector<uint64_t> all = got[0];
  all.insert(all.end(), got[1].begin(), got[1].end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, ids);
  // each thread saw its jobs in queue order
  for (const auto &g : got)
    EXPECT_TRUE(std::is_sorted(g.begin(), g.end()));
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t abs = ts.tv_sec * 1000000000ll + ts.tv_nsec + 10000000000ll;
  uint64_t point = kJobs;
  ASSERT_EQ(drmSyncobjTimelineWait(client(), &tl, &point, 1, abs,
                                   DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL, nullptr),
            0);
}

TEST_F(EngineLink, EngineDeath) {
  uint32_t s1 = 0, s2 = 0, s3 = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s1), 0);
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s2), 0);
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s3), 0);
  uint64_t id1 = SubmitCall(s1);
  std::vector<uint8_t> buf;
  ASSERT_EQ(Fetch(&buf), id1);
  SubmitCall(s2);
  engine_.reset();  // the engine dies with one job fetched, one queued
  ASSERT_TRUE(WaitSyncobj(client(), s1, 10000));
  ASSERT_TRUE(WaitSyncobj(client(), s2, 10000));
  EXPECT_EQ(FenceStatus(client(), s1), -ENODEV);
  EXPECT_EQ(FenceStatus(client(), s2), -ENODEV);
  EXPECT_EQ(GetParam(client(), FLAXDRM_PARAM_ENGINE_ATTACHED), 0u);
  Submit call(FLAXDRM_JOB_CALL, m_.root, m_.program);
  call.Bind(0, io_bo_, 0);
  call.Bind(4, io_bo_, 1024);
  EXPECT_EQ(call.Run(client()), ENODEV);

  // a new engine can attach and run jobs again
  engine_ = Fd(open(FindNodes().primary.c_str(), O_RDWR | O_CLOEXEC));
  drm_flaxdrm_engine_attach a{};
  ASSERT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_ATTACH, &a), 0);
  uint64_t id3 = SubmitCall(s3);
  ASSERT_EQ(Fetch(&buf), id3);
  ASSERT_EQ(Complete(id3, 0), 0);
  ASSERT_TRUE(WaitSyncobj(client(), s3, 10000));
  EXPECT_EQ(FenceStatus(client(), s3), 1);
}

TEST_F(EngineLink, CrossFileDependencyWaitsForFinish) {
  // a job of another file waiting on this one is not queued for the
  // engine before this one is complete
  Fd other = OpenRender();
  ASSERT_GE(other.get(), 0);
  DenseModel m2 = MakeDense(other.get());
  uint32_t io2 = BoCreate(other.get(), 4096);
  uint32_t sync_a = 0, sync_b = 0, imported = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &sync_a), 0);
  uint64_t id_a = SubmitCall(sync_a);
  int sync_fd = -1;
  ASSERT_EQ(drmSyncobjHandleToFD(client(), sync_a, &sync_fd), 0);
  ASSERT_EQ(drmSyncobjFDToHandle(other.get(), sync_fd, &imported), 0);
  close(sync_fd);
  ASSERT_EQ(drmSyncobjCreate(other.get(), 0, &sync_b), 0);
  Submit b(FLAXDRM_JOB_CALL, m2.root, m2.program);
  b.Bind(0, io2, 0);
  b.Bind(4, io2, 1024);
  b.in_syncs.push_back({imported, 0, 0});
  b.args.out_sync.handle = sync_b;
  ASSERT_EQ(b.Run(other.get()), 0);

  std::vector<uint8_t> buf;
  ASSERT_EQ(Fetch(&buf), id_a);
  EXPECT_EQ(Fetch(&buf, 300), 0u);  // b still waits for a
  ASSERT_EQ(Complete(id_a, 0), 0);
  ASSERT_EQ(Fetch(&buf), b.args.job_id);
  ASSERT_EQ(Complete(b.args.job_id, 0), 0);
  ASSERT_TRUE(WaitSyncobj(other.get(), sync_b, 10000));
  EXPECT_EQ(FenceStatus(other.get(), sync_b), 1);
}

TEST_F(EngineLink, Stress) {
  // clients submitting in parallel while the engine completes, fails or
  // ignores (timeout) their jobs; then the engine dies with jobs pending
  saved_timeout_ = GetTimeout();
  SetTimeout(200);
  std::atomic<bool> stop{false};
  std::atomic<int> fetched{0};
  std::thread engine_thread([&] {
    std::vector<uint8_t> buf(1 << 16);
    unsigned n = 0;
    while (!stop) {
      drm_flaxdrm_engine_fetch f{};
      f.timeout_ms = 50;
      f.buffer = reinterpret_cast<uintptr_t>(buf.data());
      f.buffer_size = static_cast<uint32_t>(buf.size());
      if (Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f) || !f.job_id)
        continue;
      fetched++;
      n++;
      if (n % 7 == 3)
        continue;  // lost: times out
      Complete(f.job_id, n % 5 == 1 ? -EIO : 0);
    }
  });
  auto client_fn = [&](int which, bool wait) {
    Fd f = OpenRender();
    ASSERT_GE(f.get(), 0);
    DenseModel m = MakeDense(f.get());
    uint32_t io = BoCreate(f.get(), 4096);
    uint32_t tl = 0;
    ASSERT_EQ(drmSyncobjCreate(f.get(), 0, &tl), 0);
    const uint64_t jobs = 30;
    for (uint64_t i = 1; i <= jobs; i++) {
      Submit call(FLAXDRM_JOB_CALL, m.root, m.program);
      call.Bind(0, io, 0);
      call.Bind(4, io, 1024);
      if (i > 1 && which == 0)
        call.in_syncs.push_back({tl, 0, i - 1});
      call.args.out_sync = {tl, 0, i};
      ASSERT_EQ(call.Run(f.get()), 0);
    }
    if (!wait)
      return;  // close with jobs in flight
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t abs = ts.tv_sec * 1000000000ll + ts.tv_nsec + 120000000000ll;
    uint64_t point = jobs;
    EXPECT_EQ(drmSyncobjTimelineWait(f.get(), &tl, &point, 1, abs,
                                     DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL, nullptr),
              0);
  };
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; i++)
    clients.emplace_back(client_fn, i, i != 2);
  for (auto &t : clients)
    t.join();
  stop = true;
  engine_thread.join();
  EXPECT_GT(fetched.load(), 60);
  // leave some jobs with the engine (fetched or not), then let it die
  SetTimeout(20000);
  uint32_t s = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s), 0);
  for (int i = 0; i < 5; i++)
    SubmitCall(s);
  std::vector<uint8_t> buf;
  EXPECT_NE(Fetch(&buf), 0u);
  EXPECT_NE(Fetch(&buf), 0u);
  engine_.reset();
  ASSERT_TRUE(WaitSyncobj(client(), s, 20000));
  EXPECT_EQ(FenceStatus(client(), s), -ENODEV);
}

TEST_F(EngineLink, TooManyJobsIsEBUSY) {
  // unfinished jobs per file are bounded; nothing is fetched here
  saved_timeout_ = GetTimeout();
  SetTimeout(500);
  uint32_t empty = ModuleCreate(client(), 0, FLAXDRM_KIND_SEQUENTIAL);
  int err = 0, n = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (n < 10000) {
    Submit setup(FLAXDRM_JOB_SETUP, empty);
    err = setup.Run(client());
    if (err)
      break;
    n++;
    if (getenv("FLAXDRM_TEST_TRACE") && n % 200 == 0)
      fprintf(stderr, "%d submitted after %lld ms\n", n,
              (long long)std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0).count());
  }
  EXPECT_EQ(err, EBUSY);
  EXPECT_EQ(n, 4096);
  // another file is not affected
  Fd other = OpenRender();
  uint32_t theirs = ModuleCreate(other.get(), 0, FLAXDRM_KIND_SEQUENTIAL);
  Submit setup(FLAXDRM_JOB_SETUP, theirs);
  EXPECT_EQ(setup.Run(other.get()), 0);
  // nothing is fetched: the engine stalls, the queue drains with
  // -ETIMEDOUT and closing the files does not wait for 4096 timeouts
}

TEST_F(EngineLink, QueuedJobsWaitWhileTheEngineProgresses) {
  // jobs queued behind others do not time out while the engine keeps
  // fetching and completing, even when that takes longer than the timeout
  saved_timeout_ = GetTimeout();
  SetTimeout(400);
  uint32_t tl = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &tl), 0);
  std::vector<uint64_t> ids;
  for (uint64_t i = 1; i <= 6; i++) {
    Submit call(FLAXDRM_JOB_CALL, m_.root, m_.program);
    call.Bind(0, io_bo_, 0);
    call.Bind(4, io_bo_, 1024);
    call.args.out_sync = {tl, 0, i};
    ASSERT_EQ(call.Run(client()), 0);
    ids.push_back(call.args.job_id);
  }
  std::vector<uint8_t> buf;
  for (uint64_t id : ids) {
    ASSERT_EQ(Fetch(&buf), id);
    usleep(250000);  // 6 x 250 ms > 400 ms, but each within its timeout
    ASSERT_EQ(Complete(id, 0), 0);
  }
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t abs = ts.tv_sec * 1000000000ll + ts.tv_nsec + 10000000000ll;
  uint64_t point = 6;
  ASSERT_EQ(drmSyncobjTimelineWait(client(), &tl, &point, 1, abs,
                                   DRM_SYNCOBJ_WAIT_FLAGS_WAIT_ALL, nullptr),
            0);
  // a stalled engine: a queued job fails, later ones fail at once, and a
  // FETCH brings the engine back
  uint32_t s1 = 0, s2 = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s1), 0);
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s2), 0);
  SubmitCall(s1);
  ASSERT_TRUE(WaitSyncobj(client(), s1, 10000));
  EXPECT_EQ(FenceStatus(client(), s1), -ETIMEDOUT);
  SubmitCall(s2);
  ASSERT_TRUE(WaitSyncobj(client(), s2, 200));
  EXPECT_EQ(FenceStatus(client(), s2), -ETIMEDOUT);
  EXPECT_EQ(Fetch(&buf, 0), 0u);
  uint64_t id = SubmitCall();
  ASSERT_EQ(Fetch(&buf), id);
  EXPECT_EQ(Complete(id, 0), 0);
}

TEST_F(EngineLink, ClientClosesWithJobsQueued) {
  // the client goes away; its jobs still reach the engine and complete
  uint64_t id1 = SubmitCall();
  uint64_t id2 = SubmitCall();
  client_.reset();
  std::vector<uint8_t> buf;
  ASSERT_EQ(Fetch(&buf), id1);
  ASSERT_EQ(Complete(id1, 0), 0);
  ASSERT_EQ(Fetch(&buf), id2);
  ASSERT_EQ(Complete(id2, 0), 0);
  client_ = OpenRender();
}

TEST_F(EngineLink, BlockingFetchWakesOnSubmit) {
  std::vector<uint8_t> buf(1 << 16);
  drm_flaxdrm_engine_fetch f{};
  f.timeout_ms = 10000;
  f.buffer = reinterpret_cast<uintptr_t>(buf.data());
  f.buffer_size = static_cast<uint32_t>(buf.size());
  uint64_t id = 0;
  std::thread submitter([&] {
    usleep(200000);
    id = SubmitCall();
  });
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_FETCH, &f), 0);
  auto waited = std::chrono::steady_clock::now() - t0;
  submitter.join();
  EXPECT_EQ(f.job_id, id);
  EXPECT_LT(waited, std::chrono::seconds(8));
  EXPECT_EQ(Complete(id, 0), 0);
}

TEST_F(EngineLink, PerfmonAndJobQuery) {
  std::vector<uint32_t> ids = AllCounters();
  uint32_t pm = 0;
  ASSERT_EQ(PerfmonCreate(client(), ids, &pm), 0);
  Submit call(FLAXDRM_JOB_CALL, m_.root, m_.program);
  call.Bind(0, io_bo_, 0);
  call.Bind(4, io_bo_, 1024);
  call.args.perfmon = pm;
  ASSERT_EQ(call.Run(client()), 0);
  uint64_t id = call.args.job_id;

  // unfinished: EBUSY for its file, ENOENT for another
  drm_flaxdrm_job_query q{};
  q.job_id = id;
  EXPECT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), EBUSY);
  Fd other = OpenRender();
  EXPECT_EQ(Err(other.get(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), ENOENT);
  std::vector<uint8_t> buf;
  ASSERT_EQ(Fetch(&buf), id);
  EXPECT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), EBUSY);

  // COMPLETE's profile: one timing per op, op_index in range
  std::vector<drm_flaxdrm_op_timing> t = {
      {0, FLAXDRM_OP_DENSE, 10, 400},
      {1, FLAXDRM_OP_RELU, 400, 900},
      {1, FLAXDRM_OP_RELU, 0, 0},
  };
  drm_flaxdrm_engine_complete c{};
  c.job_id = id;
  c.exec_ns = 5000;
  c.shader_invocations = 77;
  c.op_timings = reinterpret_cast<uintptr_t>(t.data());
  c.num_op_timings = 1;  // not the op count
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EINVAL);
  c.num_op_timings = 3;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EINVAL);
  c.num_op_timings = FLAXDRM_MAX_OPS + 1;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EINVAL);
  c.num_op_timings = 0;  // a pointer without a count
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EINVAL);
  c.num_op_timings = 2;
  c.op_timings = 8;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EFAULT);
  c.op_timings = reinterpret_cast<uintptr_t>(t.data());
  t[1].op_index = 2;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EINVAL);
  t[1].op_index = 1;
  c.pad = 1;
  EXPECT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), EINVAL);
  c.pad = 0;
  // the refusals left the job in flight
  EXPECT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), EBUSY);
  ASSERT_EQ(Err(engine(), DRM_IOCTL_FLAXDRM_ENGINE_COMPLETE, &c), 0);

  // the record: capacity 1 gets one timing and the count 2
  std::vector<drm_flaxdrm_op_timing> got(2);
  q = {};
  q.job_id = id;
  q.op_timings = reinterpret_cast<uintptr_t>(got.data());
  q.num_op_timings = 1;
  ASSERT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), 0);
  EXPECT_EQ(q.num_op_timings, 2u);
  EXPECT_EQ(got[0].op_index, 0u);
  EXPECT_EQ(got[0].end_ns, 400u);
  EXPECT_EQ(got[1].op_index, 0u);  // not written
  EXPECT_EQ(q.status, 0);
  EXPECT_EQ(q.op, uint32_t{FLAXDRM_JOB_CALL});
  EXPECT_EQ(q.exec_ns, 5000u);
  EXPECT_EQ(q.shader_invocations, 77u);
  EXPECT_EQ(q.flops, kDenseFlops);
  EXPECT_EQ(q.bytes_read, kDenseBytesRead);
  EXPECT_EQ(q.bytes_written, kDenseBytesWritten);
  EXPECT_GT(q.queue_ns, 0u);
  q.num_op_timings = 2;
  ASSERT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), 0);
  EXPECT_EQ(got[1].op_index, 1u);
  EXPECT_EQ(got[1].start_ns, 400u);
  EXPECT_EQ(got[1].end_ns, 900u);
  q.op_timings = 8;  // a bad pointer
  EXPECT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), EFAULT);
  q.op_timings = 0;  // no buffer: the count only
  q.num_op_timings = 5;
  ASSERT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), 0);
  EXPECT_EQ(q.num_op_timings, 2u);
  // another file's job
  EXPECT_EQ(Err(other.get(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), ENOENT);

  std::vector<uint64_t> v = PerfmonValues(client(), pm, ids.size());
  ASSERT_EQ(v.size(), ids.size());
  EXPECT_EQ(v[FLAXDRM_COUNTER_JOBS_COMPLETED], 1u);
  EXPECT_EQ(v[FLAXDRM_COUNTER_ENGINE_EXEC_NS], 5000u);
  EXPECT_EQ(v[FLAXDRM_COUNTER_SHADER_INVOCATIONS], 77u);
  EXPECT_EQ(v[FLAXDRM_COUNTER_FLOPS], kDenseFlops);
  EXPECT_EQ(v[FLAXDRM_COUNTER_OPS_EXECUTED], 2u);
  EXPECT_EQ(v[FLAXDRM_COUNTER_ERRORS], 0u);
  EXPECT_EQ(v[FLAXDRM_COUNTER_QUEUE_WAIT_NS], q.queue_ns);

  // a failed job counts as completed and as an error, its work does not
  uint32_t s = 0;
  ASSERT_EQ(drmSyncobjCreate(client(), 0, &s), 0);
  call.args.out_sync.handle = s;
  ASSERT_EQ(call.Run(client()), 0);
  ASSERT_EQ(Fetch(&buf), call.args.job_id);
  ASSERT_EQ(Complete(call.args.job_id, -EIO), 0);
  ASSERT_TRUE(WaitSyncobj(client(), s, 10000));
  std::vector<uint64_t> w = PerfmonValues(client(), pm, ids.size());
  ASSERT_EQ(w.size(), ids.size());
  EXPECT_EQ(w[FLAXDRM_COUNTER_JOBS_COMPLETED], 2u);
  EXPECT_EQ(w[FLAXDRM_COUNTER_ERRORS], 1u);
  EXPECT_EQ(w[FLAXDRM_COUNTER_FLOPS], kDenseFlops);
  EXPECT_EQ(w[FLAXDRM_COUNTER_ENGINE_EXEC_NS], 6000u);
  for (size_t i = 0; i < w.size(); i++)
    EXPECT_GE(w[i], v[i]) << i;
  q = {};
  q.job_id = call.args.job_id;
  ASSERT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), 0);
  EXPECT_EQ(q.status, -EIO);
  EXPECT_EQ(q.num_op_timings, 0u);

  // a job keeps its destroyed perfmon alive
  ASSERT_EQ(call.Run(client()), 0);
  ASSERT_EQ(PerfmonDestroy(client(), pm), 0);
  EXPECT_TRUE(PerfmonValues(client(), pm, ids.size()).empty());
  ASSERT_EQ(Fetch(&buf), call.args.job_id);
  ASSERT_EQ(Complete(call.args.job_id, 0), 0);
  ASSERT_TRUE(WaitSyncobj(client(), s, 10000));
  // and a new submit with it is refused
  EXPECT_EQ(call.Run(client()), ENOENT);
}

TEST_F(EngineLink, JobHistoryKeepsTheLastJobs) {
  // a file remembers its last FLAXDRM_JOB_HISTORY finished jobs
  std::vector<uint8_t> buf;
  std::vector<uint64_t> ids;
  for (int i = 0; i < FLAXDRM_JOB_HISTORY + 2; i++) {
    ids.push_back(SubmitCall());
    ASSERT_EQ(Fetch(&buf), ids.back());
    ASSERT_EQ(Complete(ids.back(), i == 3 ? -EINVAL : 0), 0);
  }
  drm_flaxdrm_job_query q{};
  // the two oldest are forgotten
  for (int i = 0; i < 2; i++) {
    q.job_id = ids[i];
    EXPECT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), ENOENT) << i;
  }
  for (size_t i = 2; i < ids.size(); i++) {
    q = {};
    q.job_id = ids[i];
    EXPECT_EQ(Err(client(), DRM_IOCTL_FLAXDRM_JOB_QUERY, &q), 0) << i;
    EXPECT_EQ(q.status, i == 3 ? -EINVAL : 0) << i;
  }
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(client()));
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("flaxdrm-jobs-completed:\t" +
                      std::to_string(FLAXDRM_JOB_HISTORY + 2)),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("flaxdrm-jobs-failed:\t1"), std::string::npos) << text;
}

}  // namespace
