// horo-train: trains a model (W1 `cnn`, W2 `mlp`, or a .prototxt) on Fashion-MNIST IDX files or an
// HDF5 dataset, alone or under mpirun (data-parallel, each rank its own shard; rank 0 prints and
// writes). `horo-train --help` lists every flag with its default. Exit code 0 on success; otherwise
// one line on stderr and a non-zero code.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "train/stop_signal.h"
#include "apps/version.h"
#include "train/run_log.h"
#include "train/trainer.h"
#include "apps/train_flags.h"
#include "train/loop.h"
#include "dist/flight_recorder.h"
#include "dist/timeline.h"
#include "kernels/device.h"
#include "kernels/parallel.h"
#include "kernels/simd_target.h"
#include "nn/checkpoint.h"
#include "nn/graph.h"
#include "nn/models.h"
#include "nn/spec.h"

int main(int argc, char** argv) {
  horo::apps::TrainFlags f;
  CLI::App app{"horo-train: train a model on Fashion-MNIST (IDX) or an HDF5 dataset"};
  std::string config_file, device_name = "cpu";
  horo::apps::add_train_flags(app, f, config_file, device_name);
  horo::apps::add_version_flag(app, "horo-train");
  CLI11_PARSE(app, argc, argv);

  int rank = 0;
  horo::training::install_stop_signals("horo-train");
  // run.json in the log directory (rank 0): what the run was, where it ran, how it ended (docs/runs.md).
  horo::training::RunRecord run_record;
  run_record.program = "horo-train";
  run_record.started = horo::training::utc_now();
  for (int i = 0; i < argc; ++i) run_record.command += (i ? " " : "") + std::string(argv[i]);
  try {
    // Under mpirun, GPU training reduces gradients with NCCL (HORO_ALLREDUCE can say otherwise), each
    // rank on the GPU of its node-local rank unless --device names one.
    horo::Device device = horo::Device::parse(device_name);
    const bool gpu = device.is_cuda();
    if (gpu) {
      HORO_CHECK(horo::kernels::cuda::available(), horo::ValueError, "--device ", device_name,
                 ": no CUDA device is visible to this process (or horo was built without CUDA)");
      if (device_name == "cuda") {
        for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
          if (const char* local = std::getenv(var)) {
            device = horo::Device::cuda(std::atoi(local) % horo::kernels::cuda::device_count());
            break;
          }
        }
      }
      horo::kernels::cuda::set_device(device.index);
    }
    // A resumed run takes its model specification, and the settings no flag gives, from the checkpoint.
    std::optional<horo::nn::Checkpoint> resumed;
    if (!f.resume.empty()) {
      std::string path = f.resume;
      if (path == "latest") {
        HORO_CHECK(!f.checkpoint_dir.empty(), horo::ValueError, "--resume latest needs --checkpoint-dir");
        path = horo::nn::CheckpointDir(f.checkpoint_dir, f.keep).latest();
        HORO_CHECK(!path.empty(), horo::IOError, f.checkpoint_dir, ": no checkpoint to resume from");
      }
      resumed = horo::nn::read_checkpoint(path);
    }

    std::string config_text_in = config_file.empty() ? "" : horo::nn::read_text_file(config_file);
    std::string config_source = config_file;
    if (config_file.empty() && resumed && !resumed->train_config.empty()) {
      config_text_in = resumed->train_config;
      config_source = resumed->path + ":train_config";
    }
    if (!config_source.empty()) {
      // The configuration's values stand wherever the command line gave none.
      horo::apps::merge_train_settings(horo::nn::parse_train_config(config_text_in, config_source), horo::apps::given_on(app), f);
    }
    auto comm = horo::dist::make_communicator_for(gpu);
    rank = comm->rank();
    const int world = comm->size();
    const bool leader = rank == 0;
    if (f.threads > 0) horo::set_num_threads(f.threads);
    else if (!std::getenv("HORO_NUM_THREADS") && comm->local_size() > 1)
      horo::set_num_threads(std::max(1, horo::get_num_threads() / comm->local_size()));
    // The flight recorder's records go beside the logs (or the checkpoints) when something goes wrong.
    horo::dist::FlightRecorder::instance().configure(!f.log_dir.empty() ? f.log_dir : f.checkpoint_dir, rank, world);
    if (const char* path = std::getenv("HORO_TIMELINE"); path && *path) horo::dist::Timeline::instance().enable(path, rank, world);
    f.config.device = device;

    // Data first: its sample shape and class count shape the model (built-ins take both from the data).
    std::unique_ptr<horo::training::BatchSource> train_batches;
    horo::data::ImageDataset test_set;
    horo::Shape sample{1, 28, 28};  // Fashion-MNIST's IDX files
    int64_t data_classes = 10, train_count = 0, train_label_classes = 0;
    int64_t start_epoch = resumed ? resumed->state.epoch : 0, start_batch = resumed ? resumed->state.batch_in_epoch : 0;
    // A run resumed on another number of ranks keeps the global batch where it can (horo::training::resize_on_resume).
    auto plan_resize = [&](const std::function<int64_t(int64_t)>& batches_per_epoch) {
      if (!resumed) return;
      const auto saved = horo::nn::parse_train_config(resumed->train_config, resumed->path + ":train_config");
      const auto plan = horo::training::resize_on_resume(resumed->state.ranks, saved.has_batch ? saved.batch : f.config.batch,
                                                     start_epoch, start_batch, world, f.config.batch,
                                                     horo::apps::given_on(app)("--batch"), batches_per_epoch);
      f.config.batch = plan.batch;
      start_epoch = plan.epoch;
      start_batch = plan.batch_in_epoch;
      if (leader && !plan.note.empty()) std::printf("resume: %s\n", plan.note.c_str());
    };
    if (!f.train_file.empty()) {
      // The model sees samples as the transforms make them (a crop may change the stored size).
      const horo::data::H5DatasetFile file(f.train_file);
      horo::apps::default_normalisation(file.schema(), f.data);
      const auto transforms = horo::apps::training_transforms(f.data);
      horo::data::check_transforms(transforms, file.schema().sample_shape, f.train_file);
      sample = horo::data::transformed_shape(transforms, file.schema().sample_shape, f.train_file);
      if (file.schema().num_classes > 0) data_classes = file.schema().num_classes;
      train_label_classes = file.schema().num_classes;
    }

    // The model: from the checkpoint when resuming, else the named or given specification.
    std::string spec_text = resumed ? resumed->model_spec : horo::nn::model_spec_text(f.model);
    const std::string spec_source = resumed ? resumed->path : f.model;
    auto built = horo::nn::build_model_from_text(spec_text, spec_source);  // errors point into the file as written
    // --summary without --train describes the model as written (its own input shape and head).
    const bool as_written = f.summary && f.train_file.empty();
    if (as_written) sample = built.input_shape;
    if (built.input_shape != sample) {
      HORO_CHECK(!resumed && horo::nn::is_builtin_model(f.model), horo::ShapeError, spec_source, ": the model takes samples ",
                 horo::shape_str(built.input_shape), " but the batches of ",
                 f.train_file.empty() ? std::string("the IDX data") : f.train_file, " are ", horo::shape_str(sample),
                 " (after the crops and resizing given)");
      spec_text = horo::nn::with_input_shape(spec_text, sample, spec_source);
      built = horo::nn::build_model_from_text(spec_text, spec_source);
    }
    const int64_t classes = f.num_classes > 0 ? f.num_classes : as_written ? built.output_shape.back() : data_classes;
    HORO_CHECK(!built.model->named_parameters().empty(), horo::ValueError, spec_source, ": the model has no parameters to train");
    const auto head_bias_or_weight = built.model->named_parameters().back().second;
    if (!resumed && head_bias_or_weight.size(0) != classes) spec_text = horo::nn::with_class_count(spec_text, classes, spec_source);
    horo::manual_seed(f.config.seed);
    built = horo::nn::build_model_from_text(spec_text, spec_source);
    auto model = built.model;
    // Every label must be one of the model's outputs: said before training, naming the file, rather
    // than as a cross-entropy error at the first batch that holds one.
    const int64_t outputs = built.output_shape.empty() ? 0 : built.output_shape.back();
    auto check_label_classes = [&](const std::string& file, int64_t label_classes) {
      HORO_CHECK(label_classes <= outputs, horo::ValueError, file, ": its labels go up to class ", label_classes - 1, " but the model (",
                 spec_source, ") has ", outputs, " outputs",
                 f.num_classes > 0 ? " (--num-classes " + std::to_string(f.num_classes) + ")" : std::string());
    };
    if (!f.summary && !f.train_file.empty()) check_label_classes(f.train_file, train_label_classes);
    if (f.summary) {
      if (leader) std::printf("%s", horo::nn::summary_table(built).c_str());
      return 0;
    }

    if (!f.train_file.empty()) {
      const int64_t samples = horo::data::H5DatasetFile(f.train_file).schema().count;
      plan_resize([&](int64_t batch) { return samples / (batch * world); });  // the reader drops the remainder
      auto options = horo::training::reader_options(f.train_file, f.config.batch, f.config.seed, f.config.epochs);
      options.rank = rank;
      options.world = world;
      options.pinned = f.config.device.is_cuda();  // asynchronous copies to the GPU
      options.transforms = horo::apps::training_transforms(f.data);
      options.workers = horo::apps::reader_workers(f.data, horo::data::H5DatasetFile(f.train_file).schema(), comm->local_size());
      if (resumed && start_epoch < f.config.epochs) {
        options.start_epoch = start_epoch;
        options.start_batch = start_batch;
      }
      auto source = std::make_unique<horo::training::ReaderSource>(options);
      train_count = source->batches_per_epoch() * f.config.batch * world;
      train_batches = std::move(source);
    } else {
      auto train_set = horo::data::take(horo::data::load_mnist_split(f.data_dir, true), f.train_images);
      train_count = train_set.size();
      plan_resize([&](int64_t batch) { return (train_count / world + batch - 1) / batch; });
      auto source = std::make_unique<horo::training::MemorySource>(train_set, f.config.batch, f.config.seed, rank, world);
      if (resumed && start_batch > 0) source->seek(start_epoch, start_batch);
      train_batches = std::move(source);
    }
    if (f.zero_init_residual && !resumed) {
      const int zeroed = horo::nn::zero_init_residual(*model);
      if (leader) std::printf("zero-init residual: %d BatchNorm layers start at weight 0\n", zeroed);
    }
    std::string head_prefix;
    if (!f.init_from.empty()) {
      const auto source = horo::nn::read_checkpoint(f.init_from);
      const auto report = horo::nn::load_model(*model, source, f.strict_init);
      if (leader) std::printf("init from %s: %s\n", f.init_from.c_str(), report.summary().c_str());
    }
    for (const auto& pattern : f.freeze) {
      std::vector<std::string> norms;
      const auto frozen = horo::nn::freeze(*model, pattern, &norms);
      if (leader) {
        std::printf("froze %zu tensors matching '%s'", frozen.size(), pattern.c_str());
        if (!norms.empty()) std::printf(" (%zu BatchNorm layers keep their running statistics)", norms.size());
        std::printf("\n");
      }
    }
    // The parameters live on the device before the optimizer is built on them (its state follows them).
    model->to(f.config.device);

    // Parameter groups: the head (the last linear layer) at lr, the rest at lr * backbone scale.
    std::vector<horo::Tensor> head, backbone;
    const auto params = model->named_parameters();
    const std::string head_name = params.empty() ? "" : params.back().first.substr(0, params.back().first.rfind('.'));
    for (const auto& [name, tensor] : params) (name.rfind(head_name + ".", 0) == 0 ? head : backbone).push_back(tensor);
    std::vector<horo::optim::ParamGroup> groups{{backbone, f.config.lr * f.backbone_lr_scale}, {head, f.config.lr}};
    std::unique_ptr<horo::optim::Optimizer> optimizer;
    if (f.optimizer == "sgd") {
      optimizer = std::make_unique<horo::optim::SGD>(groups, horo::optim::SgdOptions{.lr = f.config.lr, .momentum = f.momentum,
                                                                                     .weight_decay = f.weight_decay,
                                                                                     .nesterov = f.nesterov});
    } else {
      optimizer = std::make_unique<horo::optim::Adam>(groups, horo::optim::AdamOptions{.lr = f.config.lr, .weight_decay = f.weight_decay});
    }
    // The session: reducer, ZeRO, SyncBatchNorm, broadcasts, checkpoints, resume, stop signals, logs.
    horo::training::TrainerOptions session;
    session.epochs = f.config.epochs;
    session.batch = f.config.batch;
    session.max_steps = f.config.max_steps;
    session.seed = f.config.seed;
    session.device = f.config.device;
    session.checkpoint_dir = f.checkpoint_dir;
    session.checkpoint_every = f.checkpoint_every;
    session.keep = f.keep;
    session.log_dir = f.log_dir;
    session.zero = f.zero;
    session.sync_bn = f.sync_bn;
    session.schedule = [&](horo::optim::Optimizer& opt) -> std::unique_ptr<horo::optim::LRScheduler> {
      std::unique_ptr<horo::optim::LRScheduler> after;
      if (f.schedule == "step") after = std::make_unique<horo::optim::StepLR>(opt, f.step_size, f.gamma);
      if (f.schedule == "cosine") after = std::make_unique<horo::optim::CosineAnnealingLR>(opt, std::max<int64_t>(1, f.config.epochs - f.warmup_steps));
      if (f.warmup_steps > 0 || after) return std::make_unique<horo::optim::LinearWarmup>(opt, f.warmup_steps, 0.1, std::move(after));
      return nullptr;
    };
    session.model_spec = spec_text;
    session.train_config = horo::apps::train_config_text(f);
    session.title = "horo-train " + built.name;
    horo::training::Trainer trainer(*model, *optimizer, *comm, session);
    if (resumed) trainer.resume(*resumed, start_epoch, start_batch);

    // Evaluation (rank 0): the HDF5 validation set, or the IDX test set when training on IDX.
    std::function<double()> evaluate;
    int64_t test_count = 0;
    if (leader && !f.val_file.empty()) {
      // Validation data is normalised as the training data is (its statistics, not its own) and
      // cropped as evaluation crops.
      auto options = horo::training::reader_options(f.val_file, 1000, 0, 1);
      if (!f.train_file.empty()) options.transforms = horo::apps::evaluation_transforms(f.data);
      {
        const horo::data::H5DatasetFile val(f.val_file);
        check_label_classes(f.val_file, val.schema().num_classes);
        const horo::Shape val_sample = horo::data::transformed_shape(options.transforms, val.schema().sample_shape, f.val_file);
        HORO_CHECK(val_sample == sample, horo::ShapeError, f.val_file, ": its batches are ", horo::shape_str(val_sample),
                   " but the model takes ", horo::shape_str(sample), " (give --resize / --center-crop to match)");
        options.batch = std::clamp<int64_t>((int64_t{32} << 20) / (4 * horo::shape_numel(sample)), 1, 1000);  // about 32 MiB
      }
      options.workers = horo::apps::reader_workers(f.data, horo::data::H5DatasetFile(f.val_file).schema(), 1);
      options.shuffle = false;
      options.remainder = horo::data::Remainder::Keep;
      test_count = horo::data::H5DatasetFile(f.val_file).schema().count;
      evaluate = [options, &model] {
        horo::training::ReaderSource batches(options);
        return horo::training::evaluate(*model, batches);
      };
    } else if (leader && f.train_file.empty()) {
      test_set = horo::data::take(horo::data::load_mnist_split(f.data_dir, false), f.test_images);
      test_count = test_set.size();
      evaluate = [&] { return horo::training::evaluate(*model, test_set); };
    }

    if (leader) {
      std::printf("horo-train: model=%s params=%lld train=%lld test=%lld batch=%lld lr=%g threads=%d simd=%s seed=%llu ranks=%d comm=%s%s\n",
                  built.name.c_str(), static_cast<long long>(model->parameter_count()), static_cast<long long>(train_count),
                  static_cast<long long>(test_count), static_cast<long long>(f.config.batch), static_cast<double>(f.config.lr),
                  horo::get_num_threads(), horo::kernels::simd_target().c_str(), static_cast<unsigned long long>(f.config.seed), world, comm->name().c_str(),
                  resumed ? horo::detail::concat(" resumed=", resumed->path, "@step", resumed->state.step).c_str() : "");
      std::fflush(stdout);
      if (!f.log_dir.empty()) {
        run_record.dir = f.log_dir;
        auto text = [](double v) { return horo::detail::concat(v); };
        run_record.config = {
            {"model", built.name}, {"model_source", spec_source}, {"optimizer", f.optimizer}, {"lr", text(f.config.lr)},
            {"batch", std::to_string(f.config.batch)}, {"global_batch", std::to_string(f.config.batch * world)},
            {"epochs", std::to_string(f.config.epochs)}, {"max_steps", std::to_string(f.config.max_steps)},
            {"seed", std::to_string(f.config.seed)}, {"train", f.train_file.empty() ? f.data_dir + " (IDX)" : f.train_file},
            {"val", f.val_file}, {"schedule", f.schedule}, {"weight_decay", text(f.weight_decay)}, {"momentum", text(f.momentum)},
            {"device", f.config.device.str()}, {"zero", std::to_string(f.zero)}, {"sync_bn", f.sync_bn ? "true" : "false"},
            {"checkpoint_dir", f.checkpoint_dir}, {"resumed_from", resumed ? resumed->path : ""}, {"init_from", f.init_from}};
        run_record.environment = horo::apps::run_environment();
        run_record.environment.insert(run_record.environment.end(),
                                      {{"ranks", std::to_string(world)}, {"threads", std::to_string(horo::get_num_threads())},
                                       {"communicator", comm->name()}});
        run_record.flags = app.config_to_str(true, false);
        run_record.train_config = session.train_config;
        run_record.model_spec = spec_text;
        horo::training::write_run_record(run_record);
      }
    }
    horo::training::TrainCallbacks callbacks;
    callbacks.evaluate = evaluate;
    const auto result = trainer.fit(*train_batches, callbacks);
    const bool stopped = result.reason == horo::training::StopReason::Requested;
    const int exit_code = stopped ? 128 + result.stop_code : 0;  // the shell's convention for "ended by signal N"
    if (!leader) return exit_code;
    run_record.status = stopped ? "stopped" : "finished";
    run_record.ended = horo::training::utc_now();
    run_record.result = {{"steps", static_cast<double>(result.step)},
                         {"epochs", static_cast<double>(result.epochs)},
                         {"test_accuracy", evaluate ? result.test_accuracy : std::nan("")},
                         {"best_test_accuracy", evaluate ? result.best_test_accuracy : std::nan("")},
                         {"train_images_per_s", result.total_images_per_s},
                         {"seconds", result.seconds},
                         {"optimizer_state_mib_rank0", static_cast<double>(result.optimizer_state_bytes) / (1 << 20)}};
    run_record.last_checkpoint = result.last_checkpoint;
    horo::training::write_run_record(run_record);
    if (stopped) {
      std::fprintf(stderr, "horo-train: stopped by %s%s after step %lld (epoch %lld: %lld of %lld batches done)%s\n",
                   horo::training::signal_name(result.stop_code),
                   world > 1 ? horo::detail::concat(" on ", result.stopping_ranks, " of ", world, " ranks").c_str() : "",
                   static_cast<long long>(result.step), static_cast<long long>(result.next_epoch + 1),
                   static_cast<long long>(result.next_batch), static_cast<long long>(train_batches->batches_per_epoch()),
                   result.last_checkpoint.empty() ? "; no --checkpoint-dir, so nothing was saved"
                                      : horo::detail::concat("; checkpoint ", result.last_checkpoint, " written: continue with --resume latest").c_str());
      return exit_code;
    }
    if (f.config.device.is_cuda()) {
      // The device cache's account: what the run held at its peak, and how often the host waited.
      const auto stats = horo::kernels::cuda::allocator_stats();
      const double mib = 1.0 / (1 << 20);
      const int64_t steps = std::max<int64_t>(1, result.step - result.start_step);
      std::printf("gpu memory: in use %.1f MiB, cached %.1f MiB, peak %.1f MiB, %llu cudaMalloc calls, %llu cache flushes, "
                  "pinned %.1f MiB; host waits %.2f per step\n",
                  static_cast<double>(stats.in_use_bytes) * mib, static_cast<double>(stats.cached_bytes) * mib,
                  static_cast<double>(stats.peak_in_use_bytes) * mib, static_cast<unsigned long long>(stats.cuda_mallocs),
                  static_cast<unsigned long long>(stats.cache_flushes), static_cast<double>(stats.pinned_bytes) * mib,
                  static_cast<double>(horo::kernels::cuda::host_waits()) / static_cast<double>(steps));
    }
    const double mib = 1.0 / (1 << 20);
    if (f.zero == 1 && world > 1) {
      std::printf("optimizer state: %.2f MiB on rank 0, sharded over %d ranks (ZeRO-1; %.2f MiB in all)\n",
                  static_cast<double>(result.optimizer_state_bytes) * mib, world,
                  static_cast<double>(result.all_optimizer_state_bytes) * mib);
    } else {
      std::printf("optimizer state: %.2f MiB on %s\n", static_cast<double>(result.optimizer_state_bytes) * mib,
                  world > 1 ? "every rank" : "this process");
    }
    std::printf("%s\n", result.summary.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "horo-train: error%s: %s\n",
                 horo::dist::launched_by_mpi() ? horo::detail::concat(" (rank ", rank, ")").c_str() : "", e.what());
    if (run_record.dir.empty() && rank == 0 && !f.log_dir.empty()) {  // failed before the run was set up
      run_record.dir = f.log_dir;
      run_record.flags = app.config_to_str(true, false);
      run_record.environment = horo::apps::run_environment();
    }
    if (!run_record.dir.empty()) {
      run_record.status = "failed";
      run_record.error = e.what();
      run_record.ended = horo::training::utc_now();
      try {
        horo::training::write_run_record(run_record);
      } catch (const std::exception&) {  // the error above is the one to report
      }
    }
    try {
      const std::string record = horo::dist::FlightRecorder::instance().dump(horo::detail::concat("error: ", e.what()));
      if (!record.empty()) {
        std::fprintf(stderr, "horo-train: rank %d's last collectives are in %s (horo-diagnose %s explains a hang across ranks)\n",
                     rank, record.c_str(), std::filesystem::path(record).parent_path().c_str());
      }
    } catch (const std::exception& dump_error) {
      std::fprintf(stderr, "horo-train: the flight record could not be written: %s\n", dump_error.what());
    }
    std::fflush(stderr);
    // Under mpirun the other ranks may be waiting for this one in a collective: end them all.
    if (horo::dist::launched_by_mpi()) horo::dist::abort_job(1);
    return 1;
  }
}
