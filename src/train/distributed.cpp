// See distributed.h. Every collective is wrapped so that a failure (a rank that died, a
// rank that hung past the timeout) becomes an imagine::Error naming this rank and the
// operation, never a hang or an abort.
#include "train/distributed.h"

#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <thread>

#include "core/error.h"

extern char** environ;

namespace imagine {

namespace {

int env_int(const char* name, int fallback, int min, int max) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v, &end, 10);
  IMAGINE_CHECK(
      errno == 0 && *end == '\0' && n >= min && n <= max,
      "set the torchrun variables RANK, WORLD_SIZE, LOCAL_RANK (integers, 0 <= RANK < WORLD_SIZE) and "
      "MASTER_PORT (1..65535)",
      "invalid ", name, "='", v, "'");
  return static_cast<int>(n);
}

std::string first_line(const char* what) {
  std::string s(what);
  const size_t nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

}  // namespace

DistConfig DistConfig::from_environment(const std::string& backend, double timeout_s) {
  DistConfig c;
  c.backend = backend;
  c.timeout_s = timeout_s;
  if (!std::getenv("RANK")) return c;
  c.in_environment = true;
  c.world = env_int("WORLD_SIZE", 1, 1, 1 << 16);
  c.rank = env_int("RANK", 0, 0, c.world - 1);
  c.local_rank = env_int("LOCAL_RANK", c.rank, 0, 1 << 16);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) c.master_addr = a;
  c.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  // The --nproc launcher serves the store itself; so does torchrun's agent, which says so.
  const char* store = std::getenv("IMAGINE_DIST_STORE");
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  c.store_is_external =
      (store && std::string(store) == "external") || (agent && std::string(agent) == "True");
  return c;
}

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  std::deque<std::vector<at::Tensor>> started_args;  // alive until their work completes
  std::vector<c10::intrusive_ptr<c10d::Work>> started;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif

  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& t, const c10d::AllreduceOptions& o) {
#ifdef USE_C10D_NCCL
    if (nccl) return nccl->allreduce(t, o);
#endif
    return gloo->allreduce(t, o);
  }
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& t, const c10d::BroadcastOptions& o) {
#ifdef USE_C10D_NCCL
    if (nccl) return nccl->broadcast(t, o);
#endif
    return gloo->broadcast(t, o);
  }
};

Distributed::Distributed(const DistConfig& cfg) : cfg_(cfg), impl_(std::make_unique<Impl>()) {
  require_backend(cfg.backend);
  const std::string where = str(cfg.master_addr, ":", cfg.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(cfg.master_port);
    so.isServer = cfg.rank == 0 && !cfg.store_is_external;
    so.waitWorkers = false;
    so.timeout = millis(cfg.timeout_s);
    impl_->store = c10::make_intrusive<c10d::TCPStore>(cfg.master_addr, so);
  } catch (const std::exception& e) {
    throw Error(str("rank ", cfg.rank, " of ", cfg.world, ": cannot reach the rendezvous store at ", where,
                    ": ", first_line(e.what())),
                cfg.rank == 0
                    ? "another program holds MASTER_PORT, or MASTER_ADDR is not this machine; pick a free "
                      "port"
                    : "start rank 0 first (it serves the store) and check MASTER_ADDR / MASTER_PORT");
  }
  try {
    if (cfg.backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(millis(cfg.timeout_s));
      // GLOO_SOCKET_IFNAME picks the network interface, as in PyTorch; loopback for local runs.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname && *ifname)
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (cfg.master_addr == "127.0.0.1" || cfg.master_addr == "localhost")
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, cfg.rank, cfg.world, opts);
    }
#ifdef USE_C10D_NCCL
    else {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = millis(cfg.timeout_s);
      impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, cfg.rank, cfg.world, opts);
    }
#endif
  } catch (const std::exception& e) {
    throw Error(str("rank ", cfg.rank, " of ", cfg.world, ": the ranks did not all meet at ", where,
                    " within ", cfg.timeout_s, " s: ", first_line(e.what())),
                "start every rank (WORLD_SIZE of them) with the same MASTER_ADDR / MASTER_PORT, or raise "
                "--dist-timeout");
  }
}

Distributed::~Distributed() = default;

void Distributed::fail(const char* what, const std::exception& e) const {
  throw Error(
      str("rank ", cfg_.rank, " of ", cfg_.world, ": ", what, " failed: ", first_line(e.what())),
      str("another rank died or stopped answering for --dist-timeout ", cfg_.timeout_s,
          " s (its own output says why); the last checkpoint in checkpoint-latest is intact: continue with "
          "--resume, with any number of ranks"));
}

void Distributed::all_reduce(torch::Tensor& t, bool max, const char* what) {
  c10d::AllreduceOptions o;
  o.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
  o.timeout = millis(cfg_.timeout_s);
  std::vector<at::Tensor> v{t};
  try {
    impl_->allreduce(v, o)->wait(millis(cfg_.timeout_s));
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void Distributed::broadcast(const std::vector<torch::Tensor>& tensors, const char* what) {
  torch::NoGradGuard no_grad;
  c10d::BroadcastOptions o;
  o.rootRank = 0;
  o.timeout = millis(cfg_.timeout_s);
  try {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    std::vector<std::vector<at::Tensor>> args;
    args.reserve(tensors.size());
    for (const auto& t : tensors) {
      args.push_back({t.is_contiguous() ? t : t.contiguous()});
      works.push_back(impl_->broadcast(args.back(), o));
    }
    for (size_t i = 0; i < works.size(); i++) {
      works[i]->wait(millis(cfg_.timeout_s));
      if (!args[i][0].is_same(tensors[i])) tensors[i].copy_(args[i][0]);
    }
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void Distributed::start_sum(const torch::Tensor& flat, const char* what) {
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.timeout = millis(cfg_.timeout_s);
  bytes_reduced_ += flat.numel() * static_cast<int64_t>(flat.element_size());
  try {
    impl_->started_args.push_back({flat});
    impl_->started.push_back(impl_->allreduce(impl_->started_args.back(), o));
  } catch (const std::exception& e) {
    fail(what, e);
  }
}

void Distributed::wait_started(const char* what) {
  try {
    for (auto& w : impl_->started) w->wait(millis(cfg_.timeout_s));
  } catch (const std::exception& e) {
    impl_->started.clear();
    impl_->started_args.clear();
    fail(what, e);
  }
  impl_->started.clear();
  impl_->started_args.clear();
}

GradientSync::GradientSync(Distributed& dist, std::vector<torch::Tensor> params, size_t bucket_bytes)
    : dist_(dist), params_(std::move(params)) {
  const size_t n = params_.size();
  bucket_of_.assign(n, 0);
  slot_of_.assign(n, 0);
  seen_.assign(n, false);
  // Reverse order: the last layers' gradients are ready first.
  size_t bytes = bucket_bytes;
  for (size_t k = n; k-- > 0;) {
    const auto& p = params_[k];
    if (bytes >= bucket_bytes) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& b = buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = b.members.size();
    b.offsets.push_back(b.members.empty() ? 0 : b.offsets.back() + params_[b.members.back()].numel());
    b.members.push_back(k);
    bytes += static_cast<size_t>(p.numel()) * 4;
  }
  for (auto& b : buckets_) {
    const int64_t total = b.offsets.back() + params_[b.members.back()].numel();
    b.flat = torch::zeros(
        {total}, torch::TensorOptions().dtype(torch::kFloat32).device(params_[b.members[0]].device()));
  }
  for (size_t k = 0; k < n; k++)
    hooks_.push_back(params_[k].register_hook([this, k](const torch::Tensor& g) { on_grad(k, g); }));
}

GradientSync::~GradientSync() {
  for (size_t k = 0; k < hooks_.size(); k++) params_[k].remove_hook(hooks_[k]);
}

void GradientSync::arm() {
  armed_ = true;
  next_launch_ = 0;
  std::fill(seen_.begin(), seen_.end(), false);
  for (auto& b : buckets_) b.pending = b.members.size();
}

void GradientSync::on_grad(size_t k, const torch::Tensor& grad) {
  if (!armed_ || seen_[k]) return;
  seen_[k] = true;
  torch::NoGradGuard no_grad;
  Bucket& b = buckets_[bucket_of_[k]];
  auto seg = b.flat.narrow(0, b.offsets[slot_of_[k]], params_[k].numel());
  // The hook sees this pass's gradient before it is added to .grad (earlier micro-batches).
  const auto& acc = params_[k].grad();
  if (acc.defined())
    torch::add_out(seg, acc.reshape({-1}), grad.reshape({-1}));
  else
    seg.copy_(grad.reshape({-1}));
  b.pending--;
  launch_ready();
}

void GradientSync::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0)
    dist_.start_sum(buckets_[next_launch_++].flat, "the gradient all-reduce");
}

double GradientSync::finish(double local_loss) {
  torch::NoGradGuard no_grad;
  // Parameters this pass did not reach: what they accumulated before, or zeros.
  for (auto& b : buckets_) {
    for (size_t s = 0; s < b.members.size(); s++) {
      const size_t k = b.members[s];
      if (armed_ && seen_[k]) continue;
      auto seg = b.flat.narrow(0, b.offsets[s], params_[k].numel());
      const auto& acc = params_[k].grad();
      if (acc.defined())
        seg.copy_(acc.reshape({-1}));
      else
        seg.zero_();
    }
    b.pending = 0;  // every member is filled now
  }
  launch_ready();
  armed_ = false;
  auto loss = torch::tensor({local_loss}, torch::TensorOptions().dtype(torch::kFloat64));
  dist_.start_sum(loss, "the gradient all-reduce");
  dist_.wait_started("the gradient all-reduce");
  const double w = dist_.world();
  for (auto& b : buckets_) {
    b.flat.div_(w);
    for (size_t s = 0; s < b.members.size(); s++) {
      auto& p = params_[b.members[s]];
      if (!p.grad().defined()) continue;  // no gradient on any micro-batch: stays without one
      p.mutable_grad().copy_(b.flat.narrow(0, b.offsets[s], p.numel()).view_as(p));
    }
  }
  return loss.item<double>() / w;
}

void Distributed::average(const std::vector<torch::Tensor>& tensors, const char* what) {
  if (tensors.empty()) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> flat_parts;
  for (const auto& t : tensors) flat_parts.push_back(t.reshape({-1}).to(torch::kFloat32));
  auto flat = torch::cat(flat_parts);  // small (batch-norm statistics): one all-reduce
  all_reduce(flat, false, what);
  flat.div_(cfg_.world);
  int64_t off = 0;
  for (const auto& t : tensors) {
    t.copy_(flat.narrow(0, off, t.numel()).view_as(t));
    off += t.numel();
  }
}

std::vector<double> Distributed::max(const std::vector<double>& values, const char* what) {
  auto t = torch::tensor(values, torch::TensorOptions().dtype(torch::kFloat64));
  all_reduce(t, true, what);
  std::vector<double> out(values.size());
  for (size_t i = 0; i < values.size(); i++) out[i] = t[static_cast<int64_t>(i)].item<double>();
  return out;
}

std::vector<std::string> Distributed::gather_to_main(const std::string& key, const std::string& mine) {
  const std::string base = str("imagine/gather/", gathers_++, "/", key, "/");
  std::vector<std::string> out;
  try {
    if (!is_main()) {
      impl_->store->set(base + std::to_string(cfg_.rank), std::vector<uint8_t>(mine.begin(), mine.end()));
      return out;
    }
    out.push_back(mine);
    for (int r = 1; r < cfg_.world; r++) {
      const std::string k = base + std::to_string(r);
      auto bytes = impl_->store->get(k);  // waits up to the store's timeout
      impl_->store->deleteKey(k);
      out.emplace_back(bytes.begin(), bytes.end());
    }
  } catch (const std::exception& e) {
    fail("gathering the ranks' random-number states", e);
  }
  return out;
}

// ---- the --nproc launcher -------------------------------------------------------------

namespace {

std::atomic<int> g_forward_signal{0};
volatile sig_atomic_t g_child_group = 0;

void forward_signal(int sig) {
  g_forward_signal = sig;
  if (g_child_group > 0) kill(-g_child_group, sig);
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status))
    return str("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return str("exited with status ", WEXITSTATUS(status));
}

}  // namespace

int launch_local_ranks(int nproc, const std::vector<std::string>& argv, double timeout_s) {
  IMAGINE_CHECK(nproc >= 1 && nproc <= 256, "pass --nproc between 1 and 256", "invalid --nproc ", nproc);
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    c10d::TCPStoreOptions so;
    so.port = 0;  // any free port
    so.isServer = true;
    so.waitWorkers = false;
    so.timeout = millis(timeout_s);
    store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  } catch (const std::exception& e) {
    throw Error(str("cannot start the rendezvous store on 127.0.0.1: ", first_line(e.what())),
                "loopback networking must work for --nproc");
  }
  const int port = store->getPort();
  const char* env_threads = std::getenv("IMAGINE_THREADS");
  const int cores = env_threads && std::atoi(env_threads) > 0
                        ? std::atoi(env_threads)
                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int per_rank = std::max(1, cores / nproc);

  // Everything the children need is built before fork: between fork and exec only
  // async-signal-safe calls are allowed.
  std::vector<std::string> base_env;
  for (char** e = environ; *e; e++) {
    const std::string kv(*e);
    const std::string k = kv.substr(0, kv.find('='));
    if (k == "RANK" || k == "WORLD_SIZE" || k == "LOCAL_RANK" || k == "LOCAL_WORLD_SIZE" ||
        k == "MASTER_ADDR" || k == "MASTER_PORT" || k == "IMAGINE_DIST_STORE" || k == "IMAGINE_THREADS")
      continue;
    base_env.push_back(kv);
  }
  std::vector<std::vector<std::string>> envs(nproc, base_env);
  for (int r = 0; r < nproc; r++) {
    envs[r].push_back(str("RANK=", r));
    envs[r].push_back(str("LOCAL_RANK=", r));
    envs[r].push_back(str("WORLD_SIZE=", nproc));
    envs[r].push_back(str("LOCAL_WORLD_SIZE=", nproc));
    envs[r].push_back("MASTER_ADDR=127.0.0.1");
    envs[r].push_back(str("MASTER_PORT=", port));
    envs[r].push_back("IMAGINE_DIST_STORE=external");
    envs[r].push_back(str("IMAGINE_THREADS=", per_rank));
  }
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::vector<char*>> envps(nproc);
  for (int r = 0; r < nproc; r++) {
    for (auto& kv : envs[r]) envps[r].push_back(const_cast<char*>(kv.c_str()));
    envps[r].push_back(nullptr);
  }

  // The ranks run in a process group of their own, so a Ctrl-C at the terminal reaches
  // them once, through this process (which forwards it), not twice.
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  std::vector<pid_t> pids(nproc, -1);
  for (int r = 0; r < nproc; r++) {
    const pid_t pgid = r == 0 ? 0 : pids[0];
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, pgid);
      execve("/proc/self/exe", args.data(), envps[r].data());
      _exit(127);
    }
    if (pid < 0) {
      for (int q = 0; q < r; q++) kill(pids[q], SIGKILL);
      throw Error(str("cannot start rank ", r, ": ", std::strerror(errno)),
                  "the machine is out of processes");
    }
    setpgid(pid, pgid == 0 ? pid : pgid);  // also here, so the group exists before any signal
    pids[r] = pid;
    if (r == 0) g_child_group = pid;
  }
  if (g_forward_signal != 0) kill(-g_child_group, g_forward_signal);  // a signal raced the start

  int result = 0, failed_rank = -1, running = nproc;
  std::vector<bool> done(nproc, false);
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      int r = 0;
      while (r < nproc && pids[r] != pid) r++;
      if (r == nproc) continue;
      done[r] = true;
      running--;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      // 130/143: a rank stopped by the forwarded Ctrl-C / SIGTERM after its checkpoint.
      const bool stopped = g_forward_signal != 0 && WIFEXITED(status) && WEXITSTATUS(status) >= 128;
      if (!ok && result == 0) {
        result = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        if (!stopped) {
          failed_rank = r;
          std::fprintf(stderr, "error: rank %d of %d %s\n", r, nproc, describe_status(status).c_str());
          std::fprintf(
              stderr,
              "hint: the other ranks stop within --dist-timeout (%g s); the last checkpoint is intact: "
              "continue with --resume (any --nproc)\n",
              timeout_s);
          deadline = std::chrono::steady_clock::now() + millis(timeout_s + 5);
        }
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() > deadline) {
      for (int r = 0; r < nproc; r++)
        if (!done[r]) {
          std::fprintf(stderr,
                       "error: rank %d did not stop within --dist-timeout after rank %d failed; killing it\n",
                       r, failed_rank);
          kill(pids[r], SIGKILL);
        }
      deadline = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  g_child_group = 0;
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

int auto_nproc() { return 1; }

void require_backend(const std::string& backend) {
  IMAGINE_CHECK(backend == "gloo" || backend == "nccl", "pass --dist-backend gloo or nccl",
                "unknown distributed backend '", backend, "'");
  IMAGINE_CHECK(backend != "nccl" || nccl_available(),
                "use --dist-backend gloo here, or build imagine against PyTorch's CUDA LibTorch (cmake "
                "-DCMAKE_PREFIX_PATH=<torch>/share/cmake)",
                "this build of imagine has no NCCL (Debian's LibTorch is CPU-only)");
}

bool nccl_available() {
#ifdef USE_C10D_NCCL
  return true;
#else
  return false;
#endif
}

}  // namespace imagine
