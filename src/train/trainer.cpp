// The training loop. See trainer.h. Checkpoint writes never damage the previous
// checkpoint: checkpoint-latest is written to a fresh folder and swapped in by rename.
#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "core/compat.h"
#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/signals.h"
#include "nn/weights.h"
#include "train/cuda_graph.h"
#include "train/model_card.h"

namespace fs = std::filesystem;

namespace imagine {

nlohmann::json TrainRecipe::to_json() const {
  return {{"steps", steps},
          {"batch_size", batch_size},
          {"grad_accum", grad_accum},
          {"lr", lr},
          {"min_lr", min_lr},
          {"warmup_steps", warmup_steps},
          {"decay_steps", decay_end()},
          {"optimizer", optimizer},
          {"muon_lr", muon.lr},
          {"muon_momentum", muon.momentum},
          {"muon_ns_steps", muon.ns_steps},
          {"schedule", schedule},
          {"cooldown", cooldown},
          {"beta1", adamw.beta1},
          {"beta2", adamw.beta2},
          {"eps", adamw.eps},
          {"weight_decay", adamw.weight_decay},
          {"grad_clip", grad_clip},
          {"eval_every", eval_every},
          {"eval_iters", eval_iters},
          {"log_every", log_every},
          {"stop_at_loss", stop_at_loss},
          {"time_limit_s", time_limit},
          {"precision", precision},
          {"cuda_graph", cuda_graph}};
}

TrainRecipe TrainRecipe::from_json(const nlohmann::json& j) {
  TrainRecipe r;
  r.steps = j.value("steps", r.steps);
  r.time_limit = j.value("time_limit_s", r.time_limit);
  r.batch_size = j.value("batch_size", r.batch_size);
  r.grad_accum = j.value("grad_accum", r.grad_accum);
  r.lr = j.value("lr", r.lr);
  r.min_lr = j.value("min_lr", r.min_lr);
  r.warmup_steps = j.value("warmup_steps", r.warmup_steps);
  r.decay_steps = j.value("decay_steps", r.decay_steps);
  r.adamw.beta1 = j.value("beta1", r.adamw.beta1);
  r.adamw.beta2 = j.value("beta2", r.adamw.beta2);
  r.adamw.eps = j.value("eps", r.adamw.eps);
  r.adamw.weight_decay = j.value("weight_decay", r.adamw.weight_decay);
  r.optimizer = j.value("optimizer", r.optimizer);
  r.muon.lr = j.value("muon_lr", r.muon.lr);
  r.muon.momentum = j.value("muon_momentum", r.muon.momentum);
  r.muon.ns_steps = j.value("muon_ns_steps", r.muon.ns_steps);
  r.schedule = j.value("schedule", r.schedule);
  r.cooldown = j.value("cooldown", r.cooldown);
  r.grad_clip = j.value("grad_clip", r.grad_clip);
  r.eval_every = j.value("eval_every", r.eval_every);
  r.eval_iters = j.value("eval_iters", r.eval_iters);
  r.log_every = j.value("log_every", r.log_every);
  r.stop_at_loss = j.value("stop_at_loss", r.stop_at_loss);
  r.precision = j.value("precision", r.precision);
  r.cuda_graph = j.value("cuda_graph", r.cuda_graph);
  return r;
}

static std::vector<std::pair<std::string, torch::Tensor>> named_params(torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : m.named_parameters()) out.push_back({p.key(), p.value()});
  return out;
}

double TrainRecipe::lr_at_step(int64_t step) const {
  return lr_at(step, lr, min_lr, warmup_steps, decay_end(), parse_schedule(schedule), cooldown);
}

std::vector<OptimizerGroup> TrainTask::optimizer_groups(const AdamWConfig& recipe_adamw) {
  return {OptimizerGroup{"", named_params(model()), recipe_adamw}};
}

void TrainTask::stage_micro_batch(Rng&, size_t, int64_t) {
  throw Error("this model family cannot stage its batches", "train without --cuda-graph");
}
torch::Tensor TrainTask::staged_loss(size_t, int64_t) {
  throw Error("this model family cannot stage its batches", "train without --cuda-graph");
}

uint64_t rank_data_seed(uint64_t seed, int rank, int64_t step) {
  uint64_t s = seed ^ 0x5EEDDA7AULL;
  if (rank == 0 && step == 0) return s;
  // splitmix64 of (seed, rank, step): independent streams per rank.
  uint64_t z = s + 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(rank + 1) +
               0xbf58476d1ce4e5b9ULL * static_cast<uint64_t>(step);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Trainer::Trainer(TrainTask& task, TrainRecipe recipe, std::string out_dir, uint64_t seed,
                 nlohmann::json run_info, bool quiet, std::shared_ptr<Distributed> dist)
    : task_(task),
      recipe_(recipe),
      out_(std::move(out_dir)),
      seed_(seed),
      run_info_(std::move(run_info)),
      quiet_(quiet),
      groups_(task.optimizer_groups(recipe.adamw)),
      data_rng_(rank_data_seed(seed, dist ? dist->rank() : 0)),
      dist_(dist && dist->world() > 1 ? std::move(dist) : nullptr) {
  IMAGINE_CHECK(!groups_.empty(), "", "a training task declared no optimizer groups");
  IMAGINE_CHECK(recipe_.optimizer == "adamw" || recipe_.optimizer == "muon", "use --optimizer adamw or muon",
                "unknown optimizer '", recipe_.optimizer, "'");
  parse_schedule(recipe_.schedule);  // refuses an unknown one before training starts
  for (auto& g : groups_) {
    if (recipe_.optimizer != "muon") {
      opts_.emplace_back(g.params, g.adamw);
      muons_.push_back(nullptr);
      continue;
    }
    // Muon takes the hidden matrices; AdamW keeps the rest. Every parameter lands in exactly one.
    auto [matrices, rest] = split_for_muon(g.params);
    IMAGINE_CHECK(!matrices.empty(), "use --optimizer adamw",
                  "--optimizer muon: this model has no hidden matrices");
    opts_.emplace_back(rest, g.adamw);
    muons_.push_back(std::make_unique<Muon>(matrices, recipe_.muon));
  }
  // The model was initialised from the shared seed (every rank holds the same weights);
  // from here on each rank draws its own noise (dropout, GAN latents).
  if (dist_ && dist_->rank() > 0) seed_torch(rank_data_seed(seed, dist_->rank()));
}

// Checkpoint names of a group's optimizer state: unprefixed for the only group (so
// single-network checkpoints keep their layout), "<group>/..." otherwise.
static std::string state_key(const OptimizerGroup& g, const std::string& key) {
  return g.name.empty() ? key : g.name + "/" + key;
}

// The device the model trains on (its parameters'), and the checkpoint names of a rank's
// torch generator states: the CPU's, and the GPU's when training on one.
static torch::Device model_device(torch::nn::Module& m) {
  const auto params = m.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params[0].device();
}
static std::string torch_rng_key(const char* which, int rank) {
  return std::string("rng.torch_") + which + (rank == 0 ? "" : ".rank" + std::to_string(rank));
}

void Trainer::resume() {
  std::string dir = join_path(out_, "checkpoint-latest");
  if (!path_exists(join_path(dir, "trainer_state.json")) &&
      path_exists(join_path(out_, "checkpoint-latest.old")))
    dir = join_path(out_, "checkpoint-latest.old");  // a crash during the swap
  const std::string state_json = join_path(dir, "trainer_state.json");
  IMAGINE_CHECK(path_exists(state_json), "train without --resume to start a new run",
                "nothing to resume: ", state_json, " does not exist");
  nlohmann::json st;
  try {
    st = nlohmann::json::parse(read_file(state_json));
  } catch (const nlohmann::json::exception& e) {
    throw Error(state_json + " is not valid JSON", "the checkpoint is damaged; start a new run");
  }
  IMAGINE_CHECK(st.value("format", "") == "imagine.trainer_state" && st.value("format_version", 0) == 1,
                "the checkpoint is damaged or from another version", state_json,
                " is not a trainer state v1");
  for (auto& [file, sha] : json_field(st, "files", state_json).items()) {
    IMAGINE_CHECK(sha256_file(join_path(dir, file)) == sha.get<std::string>(),
                  "the checkpoint is damaged; start a new run", join_path(dir, file),
                  " does not match its recorded checksum");
  }
  load_module_weights(task_.model(), load_safetensors(join_path(dir, "model.safetensors")).tensors,
                      join_path(dir, "model.safetensors"));
  auto ts = load_safetensors(join_path(dir, "trainer_state.safetensors"));
  start_step_ = json_field(st, "step", state_json).get<int64_t>();
  const nlohmann::json& opt_steps = json_field(st, "optimizer_steps", state_json);
  for (size_t i = 0; i < groups_.size(); i++) {
    std::map<std::string, torch::Tensor> mine;
    const std::string prefix = state_key(groups_[i], "");
    for (auto& [k, v] : ts.tensors)
      if (k.rfind(prefix, 0) == 0) mine[k.substr(prefix.size())] = v;
    int64_t steps = 0;
    if (opt_steps.is_number_integer() && groups_.size() == 1)
      steps = opt_steps.get<int64_t>();
    else if (opt_steps.is_object() && opt_steps.contains(groups_[i].name))
      steps = opt_steps[groups_[i].name].get<int64_t>();
    else
      throw Error(state_json + " has no optimizer step count for group '" + groups_[i].name + "'",
                  "the checkpoint is from another model family; start without --resume");
    opts_[i].load_state(mine, steps);
    if (muons_[i]) muons_[i]->load_state(mine, steps);
  }
  // Each rank continues its own data and noise streams; a rank the checkpoint did not have
  // (more ranks than before) starts fresh ones, derived from the seed, its rank and the step.
  const int rank = dist_ ? dist_->rank() : 0;
  const nlohmann::json ranks = st.value("data_rng_ranks", nlohmann::json::array());
  auto it = ts.tensors.find(torch_rng_key("cpu", rank));
  if (rank == 0) {
    data_rng_.set_state(json_field(st, "data_rng", state_json).get<std::string>());
    IMAGINE_CHECK(it != ts.tensors.end(), "the checkpoint is damaged",
                  "trainer state lacks the torch RNG state");
  } else if (rank < static_cast<int>(ranks.size())) {
    data_rng_.set_state(ranks[rank].get<std::string>());
  } else {
    data_rng_ = Rng(rank_data_seed(seed_, rank, start_step_));
  }
  if (it != ts.tensors.end())
    set_generator_state(torch::kCPU, it->second);
  else
    seed_torch(rank_data_seed(seed_, rank, start_step_));
  // A GPU's generator (dropout masks drawn on the device): restored when the checkpoint was
  // written on a GPU, else seeded afresh for this rank and step.
  const torch::Device device = model_device(task_.model());
  if (device.is_cuda()) {
    auto cuda = ts.tensors.find(torch_rng_key("cuda", rank));
    if (cuda != ts.tensors.end()) {
      set_generator_state(device, cuda->second);
    } else {
      auto gen = default_generator(device);
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(rank_data_seed(seed_, rank, start_step_));
    }
  }
  // null (no evaluation before the checkpoint) means none yet; value() would throw on it.
  const nlohmann::json best_val = st.value("best_val_loss", nlohmann::json(nullptr));
  best_val_ = best_val.is_number() ? best_val.get<double>() : std::numeric_limits<double>::infinity();
  best_step_ = st.value("best_step", int64_t{0});
  prior_seconds_ = st.value("elapsed_s", 0.0);

  // Drop metrics logged after the checkpoint, so the resumed log continues seamlessly.
  const std::string metrics = join_path(out_, "metrics.jsonl");
  if (is_main() && path_exists(metrics)) {
    std::istringstream in(read_file(metrics));
    std::string line, kept;
    while (std::getline(in, line)) {
      try {
        if (nlohmann::json::parse(line).value("step", int64_t{0}) <= start_step_) kept += line + "\n";
      } catch (...) {
      }
    }
    write_file_atomic(metrics, kept);
  }
  IMAGINE_CHECK(start_step_ <= recipe_.steps, "pass a larger --steps to train further",
                "the checkpoint is at step ", start_step_, ", beyond --steps ", recipe_.steps);
}

nlohmann::json Trainer::config_json(int64_t step) const {
  nlohmann::json cfg = task_.model_config();
  cfg["training"] = training_record(step);
  if (run_info_.contains("data_license")) cfg["data_license"] = run_info_["data_license"];
  return cfg;
}

nlohmann::json Trainer::training_record(int64_t step) const {
  nlohmann::json j = run_info_;
  j.erase("data_license");
  j["recipe"] = recipe_.to_json();
  j["seed"] = seed_;
  j["step"] = step;
  j["best_step"] = best_step_;
  j["best_val_loss"] = std::isfinite(best_val_) ? nlohmann::json(best_val_) : nlohmann::json(nullptr);
  return j;
}

void Trainer::append_metrics(const nlohmann::json& j) {
  if (!is_main()) return;
  std::ofstream f(join_path(out_, "metrics.jsonl"), std::ios::app);
  f << j.dump() << "\n";
}

void Trainer::save_best(int64_t step, double val_loss) {
  best_val_ = val_loss;
  best_step_ = step;
  if (!is_main()) return;
  save_safetensors(join_path(out_, "model.safetensors"), module_weights(task_.model()),
                   {{"format", "pt"}, {"step", std::to_string(step)}});
  write_model_config(out_, config_json(step));
}

static std::string tensor_bytes(const torch::Tensor& t) {
  auto c = t.contiguous().to(torch::kCPU);
  return std::string(static_cast<const char*>(c.data_ptr()),
                     static_cast<size_t>(c.numel() * c.element_size()));
}

void Trainer::save_latest(int64_t step, double elapsed) {
  // Rank 0 writes; the other ranks hand it their random-number states first.
  const torch::Device device = model_device(task_.model());
  std::vector<std::string> data_rngs, torch_rngs, cuda_rngs;
  if (dist_) {
    data_rngs = dist_->gather_to_main("data_rng", data_rng_.state());
    torch_rngs = dist_->gather_to_main("torch_rng", tensor_bytes(generator_state(torch::kCPU)));
    if (device.is_cuda())
      cuda_rngs = dist_->gather_to_main("torch_cuda_rng", tensor_bytes(generator_state(device)));
    if (!is_main()) return;
  }
  const std::string final_dir = join_path(out_, "checkpoint-latest");
  const std::string tmp = join_path(out_, "checkpoint-latest.tmp-" + std::to_string(getpid()));
  const std::string old = join_path(out_, "checkpoint-latest.old");
  fs::remove_all(tmp);
  make_dirs(tmp);
  std::map<std::string, torch::Tensor> state;
  nlohmann::json opt_steps = nlohmann::json::object();
  for (size_t i = 0; i < groups_.size(); i++) {
    for (auto& [k, v] : opts_[i].state()) state[state_key(groups_[i], k)] = v;
    if (muons_[i])
      for (auto& [k, v] : muons_[i]->state()) state[state_key(groups_[i], k)] = v;
    opt_steps[groups_[i].name] = opts_[i].steps();
  }
  if (groups_.size() == 1) opt_steps = opts_[0].steps();
  state[torch_rng_key("cpu", 0)] = generator_state(torch::kCPU);
  if (device.is_cuda()) state[torch_rng_key("cuda", 0)] = generator_state(device);
  auto from_bytes = [](const std::string& b) {
    auto t = torch::empty({static_cast<int64_t>(b.size())}, torch::kUInt8);
    std::memcpy(t.data_ptr(), b.data(), b.size());
    return t;
  };
  for (size_t r = 1; r < torch_rngs.size(); r++)
    state[torch_rng_key("cpu", static_cast<int>(r))] = from_bytes(torch_rngs[r]);
  for (size_t r = 1; r < cuda_rngs.size(); r++)
    state[torch_rng_key("cuda", static_cast<int>(r))] = from_bytes(cuda_rngs[r]);
  const std::string model_bytes = safetensors_bytes(module_weights(task_.model()), {{"format", "pt"}});
  const std::string state_bytes = safetensors_bytes(state);
  write_file_atomic(join_path(tmp, "model.safetensors"), model_bytes);
  write_file_atomic(join_path(tmp, "trainer_state.safetensors"), state_bytes);
  nlohmann::json st = {
      {"format", "imagine.trainer_state"},
      {"format_version", 1},
      {"step", step},
      {"optimizer_steps", opt_steps},
      {"data_rng", data_rng_.state()},
      {"world_size", world()},
      {"data_rng_ranks",
       data_rngs.empty() ? nlohmann::json::array({data_rng_.state()}) : nlohmann::json(data_rngs)},
      {"lr", recipe_.lr_at_step(step)},
      {"best_val_loss", std::isfinite(best_val_) ? nlohmann::json(best_val_) : nlohmann::json(nullptr)},
      {"best_step", best_step_},
      {"elapsed_s", elapsed},
      {"recipe", recipe_.to_json()},
      {"files",
       {{"model.safetensors", sha256_hex(model_bytes)},
        {"trainer_state.safetensors", sha256_hex(state_bytes)}}}};
  write_file_atomic(join_path(tmp, "trainer_state.json"), st.dump(2) + "\n");
  // Swap: the previous checkpoint survives until the new one is complete and in place.
  std::error_code ec;
  fs::remove_all(old, ec);
  if (fs::exists(final_dir)) fs::rename(final_dir, old);
  fs::rename(tmp, final_dir);
  fs::remove_all(old, ec);
  if (!std::isfinite(best_val_)) {
    // No evaluation yet: keep config.json current so the directory is always loadable.
    write_model_config(out_, config_json(step));
    if (!path_exists(join_path(out_, "model.safetensors")))
      write_file_atomic(join_path(out_, "model.safetensors"), model_bytes);
  }
}

static std::string fmt(double v, int prec = 4) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}

static std::string fmt_rate(double r) {
  std::ostringstream os;
  if (r >= 1e6)
    os << std::fixed << std::setprecision(2) << r / 1e6 << "M";
  else if (r >= 1e3)
    os << std::fixed << std::setprecision(1) << r / 1e3 << "k";
  else
    os << std::fixed << std::setprecision(0) << r;
  return os.str();
}

TrainOutcome Trainer::run() {
  CooperativeInterrupts coop("finishing the current step and saving a checkpoint");
  make_dirs(out_);
  TrainOutcome out;
  auto& model = task_.model();
  const torch::Device device = model_device(model);
  const bool bf16 = recipe_.precision == "bf16";
  Progress progress(recipe_.steps, recipe_.log_every, quiet_ || !is_main(), "train");
  const auto t_start = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  double train_seconds = 0, units = 0, last_loss = 0;
  int64_t step = start_step_;
  double val_loss = std::numeric_limits<double>::quiet_NaN();

  auto evaluate = [&](int64_t at_step) {
    model.eval();
    std::map<std::string, double> m;
    std::string sample;
    {
      SavedTorchRng keep;  // evaluating and sampling never move the training streams (CPU or GPU)
      {
        compat::AutocastBf16 autocast(device, bf16);
        m = task_.evaluate(recipe_.eval_iters);
      }
      if (is_main()) sample = task_.eval_sample();
    }
    model.train();
    val_loss = m.at("val_loss");
    nlohmann::json j = {{"step", at_step}, {"event", "eval"}, {"elapsed_s", prior_seconds_ + since(t_start)}};
    std::string line = "step " + std::to_string(at_step) + ":";
    for (auto& [k, v] : m) {
      j[k] = v;
      line += " " + k + " " + fmt(v);
    }
    const bool improved = val_loss < best_val_;
    if (improved) save_best(at_step, val_loss);
    j["best_val_loss"] = best_val_;
    append_metrics(j);
    if (improved) line += " (best)";
    progress.message(line);
    if (!sample.empty()) progress.message(sample);
  };

  // With a time budget the schedule runs on the budget's clock: the position of step s is
  // steps x (time used / budget), and training stops while a final evaluation still fits.
  const double budget = recipe_.time_limit;
  double eval_seconds = 0;  // the last evaluation's duration (the final one is about as long)
  auto time_used = [&] { return prior_seconds_ + since(t_start); };
  // Ranks keep their own clocks: every decision taken on one is agreed on by all ranks (the
  // latest clock, and "any rank" for stopping), so they always take the same steps.
  auto local_out_of_time = [&] { return budget > 0 && time_used() + eval_seconds >= budget; };
  auto out_of_time = [&] {
    if (budget <= 0) return false;
    return dist_ ? dist_->any(local_out_of_time(), "agreeing on the time limit") : local_out_of_time();
  };
  auto schedule_step = [&](int64_t s) {
    if (budget <= 0) return s;
    const double used = dist_ ? dist_->max({time_used()}, "agreeing on the clock")[0] : time_used();
    return static_cast<int64_t>(
        std::llround(static_cast<double>(recipe_.steps) * std::min(1.0, used / budget)));
  };
  // Every rank starts from rank 0's weights; batch-norm running statistics (the only state
  // that is not a parameter and differs between ranks' batches) are averaged after each step.
  std::vector<torch::Tensor> running_stats;
  if (dist_) {
    std::vector<torch::Tensor> state;
    for (auto& p : model.named_parameters()) state.push_back(p.value());
    for (auto& b : model.named_buffers()) {
      state.push_back(b.value());
      const std::string& k = b.key();
      const bool stat = (k.size() >= 12 && k.compare(k.size() - 12, 12, "running_mean") == 0) ||
                        (k.size() >= 11 && k.compare(k.size() - 11, 11, "running_var") == 0);
      if (stat && b.value().is_floating_point()) running_stats.push_back(b.value());
    }
    dist_->broadcast(state, "sharing rank 0's weights");
  }
  std::vector<std::unique_ptr<GradientSync>> syncs;  // one per optimizer group
  if (dist_)
    for (auto& g : groups_) {
      std::vector<torch::Tensor> ps;
      for (auto& [name, p] : g.params) ps.push_back(p);
      syncs.push_back(std::make_unique<GradientSync>(*dist_, ps, dist_->bucket_bytes));
    }

  // --cuda-graph: the single group's whole step is captured once and replayed.
  std::unique_ptr<CudaGraphStep> graphed;
  if (recipe_.cuda_graph) {
    IMAGINE_CHECK(groups_.size() == 1 && groups_[0].repeats == 1 && !dist_, "train without --cuda-graph",
                  "--cuda-graph captures single-network, single-process training only");
    IMAGINE_CHECK(!muons_[0], "use --optimizer adamw with --cuda-graph",
                  "--cuda-graph captures the fused AdamW step; Muon is not captured");
    std::vector<torch::Tensor> ps;
    for (auto& [name, p] : groups_[0].params) ps.push_back(p);
    graphed = std::make_unique<CudaGraphStep>(task_, opts_[0], ps, recipe_.grad_accum, recipe_.grad_clip,
                                              bf16, device);
  }

  model.train();
  const bool spent = out_of_time() && step < recipe_.steps;
  if (spent) progress.message("the --time-limit is used up already: evaluating and stopping");
  while (!spent && step < recipe_.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = recipe_.lr_at_step(schedule_step(step));
    std::vector<double> group_loss(groups_.size(), 0.0);
    torch::Tensor grad_norm;  // on the device; read only when logged
    for (size_t g = 0; g < groups_.size(); g++) {
      if (graphed) {
        auto r = graphed->step(data_rng_, lr * groups_[g].lr_scale);
        group_loss[g] = r.loss.item<double>();
        grad_norm = r.grad_norm;
        if (!std::isfinite(group_loss[g]))
          throw Error(str("training diverged: loss is ", group_loss[g], " at step ", step + 1),
                      "lower --lr or raise --warmup-steps; the last good checkpoint is in checkpoint-latest");
        continue;
      }
      for (int64_t rep = 0; rep < groups_[g].repeats; rep++) {
        opts_[g].zero_grad();
        if (muons_[g]) muons_[g]->zero_grad();
        // Summed on the device and read once per step: a GPU is not made to wait per micro-batch.
        torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions(torch::kDouble).device(device));
        for (int64_t micro = 0; micro < recipe_.grad_accum; micro++) {
          torch::Tensor loss;
          {
            compat::AutocastBf16 autocast(device, bf16);
            loss = task_.micro_batch_loss(data_rng_, g);
          }
          if (dist_ && micro == recipe_.grad_accum - 1) syncs[g]->arm();  // all-reduce during backward
          (loss / static_cast<double>(recipe_.grad_accum)).backward();
          loss_sum += loss.detach().to(torch::kDouble);
        }
        group_loss[g] = loss_sum.item<double>() / recipe_.grad_accum;
        if (dist_) group_loss[g] = syncs[g]->finish(group_loss[g]);  // the global batch's loss
        if (!std::isfinite(group_loss[g]))
          throw Error(str("training diverged: ", groups_[g].name.empty() ? "" : groups_[g].name + " ",
                          "loss is ", group_loss[g], " at step ", step + 1),
                      "lower --lr or raise --warmup-steps; the last good checkpoint is in checkpoint-latest");
        if (recipe_.grad_clip > 0) {
          std::vector<torch::Tensor> ps;
          for (auto& [name, p] : groups_[g].params) ps.push_back(p);
          grad_norm = clip_grad_norm(ps, recipe_.grad_clip);
        }
        opts_[g].step(lr * groups_[g].lr_scale);
        if (muons_[g]) muons_[g]->step(lr * groups_[g].lr_scale * recipe_.muon.lr / recipe_.lr);
      }
    }
    last_loss = group_loss.back();
    if (!running_stats.empty()) dist_->average(running_stats, "averaging batch-norm statistics");
    task_.after_step(step + 1);
    step++;
    train_seconds += since(t0);
    units += static_cast<double>(task_.units_per_micro_batch() * recipe_.grad_accum * world());
    const double rate = units / (train_seconds > 0 ? train_seconds : 1e-9);
    std::string losses;
    for (size_t g = 0; g < groups_.size(); g++)
      losses += (groups_[g].name.empty() ? "loss" : groups_[g].name) + " " + fmt(group_loss[g]) + " ";
    progress.update(step, losses + fmt_rate(rate) + " " + task_.unit() + "/s");
    if (step % recipe_.log_every == 0 || step == recipe_.steps) {
      nlohmann::json j = {{"step", step},
                          {"loss", last_loss},
                          {"lr", lr},
                          {task_.unit() + "_per_s", rate},
                          {"elapsed_s", prior_seconds_ + since(t_start)}};
      if (grad_norm.defined()) j["grad_norm"] = grad_norm.item<double>();
      if (dist_)
        j["allreduce_bytes_per_step"] = dist_->bytes_all_reduced() / std::max<int64_t>(1, step - start_step_);
      if (groups_.size() > 1)
        for (size_t g = 0; g < groups_.size(); g++) j["loss_" + groups_[g].name] = group_loss[g];
      append_metrics(j);
    }
    if (on_step) on_step(step, last_loss);

    const bool time_up = out_of_time();
    const bool eval_now =
        (recipe_.eval_every > 0 && step % recipe_.eval_every == 0) || step == recipe_.steps || time_up;
    if (eval_now) {
      const auto e0 = std::chrono::steady_clock::now();
      evaluate(step);
      eval_seconds = since(e0);
      save_latest(step, prior_seconds_ + since(t_start));
      if (recipe_.stop_at_loss > 0 && val_loss <= recipe_.stop_at_loss) {
        out.reached_target = true;
        progress.message("reached target validation loss " + fmt(recipe_.stop_at_loss) + " at step " +
                         std::to_string(step));
        break;
      }
    }
    // Out of time now, or after this evaluation (the next one would not fit): stop, evaluated.
    if (budget > 0 && (time_up || (eval_now && out_of_time()))) {
      out.out_of_time = true;
      progress.message("time limit: stopped at step " + std::to_string(step) + " of " +
                       std::to_string(recipe_.steps) + " after " + fmt(time_used()) + " s of " + fmt(budget) +
                       " s");
      break;
    }
    if (dist_ ? dist_->any(interrupt_requested(), "agreeing on Ctrl-C") : interrupt_requested()) {
      if (!eval_now) save_latest(step, prior_seconds_ + since(t_start));
      out.interrupted = true;
      progress.message("interrupted at step " + std::to_string(step) + "; checkpoint saved to " +
                       join_path(out_, "checkpoint-latest") + " (continue with --resume)");
      break;
    }
  }
  if (step == start_step_ && (step >= recipe_.steps || out_of_time()) && !std::isfinite(best_val_)) {
    evaluate(step);
    save_latest(step, time_used());
  }
  progress.finish();
  out.step = step;
  out.best_val_loss = best_val_;
  out.best_step = best_step_;
  out.last_val_loss = val_loss;
  out.seconds = since(t_start);
  out.units_per_second = units / (train_seconds > 0 ? train_seconds : 1e-9);
  return out;
}

Options resume_options(const Options& given, const nlohmann::json& previous,
                       const std::vector<std::string>& arch_keys) {
  Options o = given;
  const nlohmann::json recorded =
      previous.value("training", nlohmann::json::object()).value("options", nlohmann::json::object());
  for (auto& [k, v] : recorded.items()) {
    if (k == "resume" || !given.table->find(k)) continue;
    if (!given.given(k)) {
      o.set_json(k, v, "checkpoint");
      continue;
    }
    Options probe = given;
    probe.set_json(k, v, "checkpoint");
    const bool arch = std::find(arch_keys.begin(), arch_keys.end(), k) != arch_keys.end();
    // Numbers compare as numbers: a preset's "0" is the checkpoint's 0.0.
    const OptType type = given.table->find(k)->type;
    const bool same = type == OptType::Float ? probe.f(k) == given.f(k) : probe.s(k) == given.s(k);
    IMAGINE_CHECK(!arch || same, "drop the architecture flags when resuming", "--", k, " ", given.s(k),
                  " differs from the checkpoint's ", probe.s(k),
                  "; the architecture cannot change when resuming");
  }
  return o;
}

static void check_out_dir(const Options& given) {
  IMAGINE_CHECK(!given.s("out").empty(), "pass --out DIR for the model directory", "missing --out");
  if (!given.b("resume"))
    IMAGINE_CHECK(!path_exists(join_path(given.s("out"), "config.json")),
                  "pass --resume to continue it, or choose another --out (delete the folder to start over)",
                  given.s("out"), " already holds a model; refusing to overwrite it");
}

void add_distributed_options(OptionTable& t) {
  t.text("nproc", "1",
         "data-parallel ranks on this machine (c10d; threads per rank = cores / N unless --threads); "
         "torchrun's RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT take precedence",
         "N")
      .choice("dist-backend", "auto", {"auto", "gloo", "nccl"},
              "c10d backend (auto: nccl on CUDA, gloo on CPU)")
      .real("dist-timeout", 60, 1, 86400, "seconds a rank waits for the others before failing with an error");
}

// Each of `world` ranks' share of the global batch; an error unless they divide it.
static int64_t batch_share(int64_t global_batch, int world) {
  IMAGINE_CHECK(global_batch % world == 0,
                str("pick a --batch-size that ", world, " ranks divide (each rank draws batch-size / ranks)"),
                "--batch-size ", global_batch, " is not a multiple of the ", world, " ranks");
  return global_batch / world;
}

static int parse_nproc(const Options& o) {
  if (!o.table || !o.table->find("nproc")) return 1;
  const std::string v = o.s("nproc");
  if (v == "auto") return auto_nproc();
  char* end = nullptr;
  const long n = std::strtol(v.c_str(), &end, 10);
  IMAGINE_CHECK(!v.empty() && *end == '\0' && n >= 1 && n <= 256, "pass --nproc N (1..256) or --nproc auto",
                "invalid --nproc '", v, "'");
  return static_cast<int>(n);
}

static std::string dist_backend(const Options& o, const torch::Device& device) {
  const std::string b = o.table && o.table->find("dist-backend") ? o.s("dist-backend") : "auto";
  if (b != "auto") return b;
  return device.is_cuda() ? "nccl" : "gloo";
}

int local_ranks_to_launch(const Options& given) {
  if (std::getenv("RANK")) return 1;  // this process is a rank already
  const int n = parse_nproc(given);
  if (n <= 1) return 1;
  check_out_dir(given);
  require_backend(dist_backend(given, resolve_device(given.s("device"))));
  Options o = given;
  if (given.b("resume")) o = resume_options(given, read_model_config(given.s("out")), {});
  if (o.table->find("batch-size")) batch_share(o.i("batch-size"), n);
  return n;
}

int64_t RunSetup::rank_batch(int64_t global_batch) const { return batch_share(global_batch, world()); }

RunSetup start_run(const Options& given, const std::vector<std::string>& arch_keys) {
  check_out_dir(given);
  RunSetup s;
  s.options = given;
  s.out = given.s("out");
  s.resume = given.b("resume");
  if (s.resume) {
    s.previous = read_model_config(s.out);
    s.options = resume_options(given, s.previous, arch_keys);
  }
  // A resumed run keeps the licence it recorded unless --data-license is given again (the
  // recorded flag may name a file that is gone by now).
  const bool has_flag = s.options.table && s.options.table->find("data-license");
  s.data_license = resolve_data_license(
      has_flag && given.given("data-license") ? given.s("data-license") : "", s.previous);
  s.threads = set_threads(static_cast<int>(s.options.i("threads")));
  s.device = resolve_device(s.options.s("device"));
  if (s.options.table && s.options.table->find("cuda-graph") && s.options.b("cuda-graph")) {
    const std::string why = CudaGraphStep::unsupported_reason();
    IMAGINE_CHECK(why.empty(), "train without --cuda-graph", "--cuda-graph: ", why);
    IMAGINE_CHECK(s.device.is_cuda(), "pass --device cuda, or train without --cuda-graph",
                  "--cuda-graph captures GPU work; this run trains on ", s.device.str());
  }
  // One rank of several (torchrun's variables, or --nproc's launcher): meet the others. Every
  // rank has passed the --out check above before any of them can write there.
  const DistConfig dc = DistConfig::from_environment(
      dist_backend(s.options, s.device),
      s.options.table && s.options.table->find("dist-timeout") ? s.options.f("dist-timeout") : 60.0);
  if (dc.in_environment) {
    const int n = parse_nproc(given);
    IMAGINE_CHECK(!given.given("nproc") || n == dc.world, "drop --nproc when torchrun sets WORLD_SIZE",
                  "--nproc ", n, " differs from WORLD_SIZE=", dc.world);
    if (dc.world > 1) {
      s.dist = std::make_shared<Distributed>(dc);
      if (s.dist->rank() > 0) s.options.set_json("quiet", true, "rank");  // rank 0 reports for all
    }
  }
  int64_t seed = s.options.i("seed");
  if (s.resume)
    seed = s.previous["training"].value("seed", int64_t{0});  // the recorded seed, even if it was -1
  s.seed = resolve_seed(seed);
  return s;
}

TrainOutcome run_trainer(TrainTask& task, const TrainRecipe& recipe, const RunSetup& setup,
                         const std::function<void(const std::string&)>& log) {
  nlohmann::json run_info = {
      {"device", setup.device.str()}, {"threads", setup.threads}, {"options", setup.options.to_json()}};
  if (!setup.data_license.is_null()) run_info["data_license"] = setup.data_license;
  if (setup.dist) {
    run_info["world_size"] = setup.world();
    run_info["dist_backend"] = setup.dist->config().backend;
  }
  Trainer trainer(task, recipe, setup.out, setup.seed, run_info, setup.options.b("quiet"), setup.dist);
  if (setup.resume) {
    trainer.resume();
    log(str("resuming ", setup.out, " from its latest checkpoint"));
  }
  TrainOutcome outcome = trainer.run();
  if (setup.rank() == 0 && path_exists(join_path(setup.out, "config.json"))) {
    write_model_card(setup.out);
    log("wrote the model card " + join_path(setup.out, "README.md"));
  }
  return outcome;
}

double parse_duration(const std::string& text) {
  const std::string hint = "write a duration such as 90s, 5m, 1h30m or 300 (seconds)";
  double total = 0;
  size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(text.substr(i), &used);
    } catch (const std::exception&) {
      throw Error("invalid duration '" + text + "'", hint);
    }
    if (used == 0 || !std::isfinite(v) || v < 0) throw Error("invalid duration '" + text + "'", hint);
    i += used;
    double unit = 1;
    if (i < text.size()) {
      const char u = text[i++];
      if (u == 'h')
        unit = 3600;
      else if (u == 'm')
        unit = 60;
      else if (u == 's')
        unit = 1;
      else
        throw Error("invalid duration '" + text + "': unknown unit '" + std::string(1, u) + "'", hint);
    } else if (any) {
      throw Error("invalid duration '" + text + "': a unit is missing after " + std::to_string(v), hint);
    }
    total += v * unit;
    any = true;
  }
  if (!any || total <= 0 || total > 366 * 86400.0)
    throw Error("invalid duration '" + text + "'", hint + " (more than 0, at most a year)");
  return total;
}

TrainRecipe recipe_from_options(const Options& o) {
  TrainRecipe r;
  auto has = [&](const char* k) { return o.table && o.table->find(k) != nullptr; };
  if (has("steps")) r.steps = o.i("steps");
  if (has("batch-size")) r.batch_size = o.i("batch-size");
  if (has("grad-accum")) r.grad_accum = o.i("grad-accum");
  if (has("lr")) r.lr = o.f("lr");
  if (has("min-lr")) r.min_lr = o.f("min-lr");
  if (has("warmup-steps")) r.warmup_steps = o.i("warmup-steps");
  if (has("decay-steps")) r.decay_steps = o.i("decay-steps");
  if (has("beta1")) r.adamw.beta1 = o.f("beta1");
  if (has("beta2")) r.adamw.beta2 = o.f("beta2");
  if (has("weight-decay")) r.adamw.weight_decay = o.f("weight-decay");
  if (has("grad-clip")) r.grad_clip = o.f("grad-clip");
  if (has("eval-every")) r.eval_every = o.i("eval-every");
  if (has("eval-iters")) r.eval_iters = o.i("eval-iters");
  if (has("log-every")) r.log_every = o.i("log-every");
  if (has("stop-at-loss")) r.stop_at_loss = o.f("stop-at-loss");
  if (has("cuda-graph")) r.cuda_graph = o.b("cuda-graph");
  if (has("optimizer")) r.optimizer = o.s("optimizer");
  if (has("muon-lr")) r.muon.lr = o.f("muon-lr");
  if (has("muon-momentum")) r.muon.momentum = o.f("muon-momentum");
  if (has("muon-ns-steps")) r.muon.ns_steps = static_cast<int>(o.i("muon-ns-steps"));
  if (has("schedule")) r.schedule = o.s("schedule");
  if (has("cooldown")) r.cooldown = o.f("cooldown");
  if (has("time-limit") && !o.s("time-limit").empty()) r.time_limit = parse_duration(o.s("time-limit"));
  IMAGINE_CHECK(r.min_lr <= r.lr, "pass --min-lr at most --lr", "--min-lr ", r.min_lr, " exceeds --lr ",
                r.lr);
  return r;
}

}  // namespace imagine
