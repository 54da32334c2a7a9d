// multipart/form-data bodies of the HTTP handler API: the protocols parser fed from the
// request's body pieces as they arrive, fields kept in memory (bounded), files kept in
// memory up to upload_memory_size and written to a temporary file beyond it, so an upload
// of any size costs a bounded amount of memory.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "swactor/actors/errors.hpp"
#include "swactor/actors/http.hpp"
#include "swactor/core/error.hpp"
#include "swactor/protocols/multipart.hpp"

namespace swactor::http {
namespace {

namespace mp = protocols::multipart;

std::error_code last_errno() { return {errno, std::system_category()}; }

std::error_code write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    auto n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_errno();
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

class form_sink final : public mp::part_sink {
 public:
  form_sink(const form_options& o, param_list& fields, std::vector<uploaded_file>& files, upload_observer* obs)
      : opts_(o), fields_(fields), files_(files), obs_(obs) {}
  ~form_sink() { close_file(); }
  form_sink(const form_sink&) = delete;
  form_sink& operator=(const form_sink&) = delete;

  std::error_code on_part_begin(const mp::part_head& h) override {
    if (h.has_filename) {
      // Listed at once: a file that fails half-way is still removed with the request.
      files_.push_back({h.name, h.filename, h.content_type, 0, {}, {}});
      file_ = &files_.back();
      if (obs_) obs_->on_file_begin(*file_);
    } else {
      file_ = nullptr;
      field_name_ = h.name;
      field_value_.clear();
    }
    return {};
  }

  std::error_code on_part_data(std::string_view d) override {
    if (!file_) {
      if (field_value_.size() + d.size() > opts_.max_field_size) return mp::errc::part_too_large;
      field_value_.append(d);
      return {};
    }
    file_->size += d.size();
    if (fd_ >= 0) {
      if (auto ec = write_all(fd_, d)) return ec;
    } else {
      file_->content.append(d);
      if (file_->content.size() > opts_.upload_memory_size) {
        if (auto ec = spill()) return ec;
      }
    }
    if (obs_) obs_->on_file_data(*file_, d);
    return {};
  }

  std::error_code on_part_end() override {
    if (!file_) {
      fields_.emplace_back(std::move(field_name_), std::move(field_value_));
      return {};
    }
    close_file();
    if (obs_) obs_->on_file_end(*file_);
    file_ = nullptr;
    return {};
  }

 private:
  // The file outgrew memory: on to disk.
  std::error_code spill() {
    std::string path = opts_.upload_tmp_dir;
    if (path.empty()) path = "/tmp";
    if (path.back() != '/') path += '/';
    path += "swactor-upload-XXXXXX";
    fd_ = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd_ < 0) return last_errno();
    file_->temp_path = path;
    auto ec = write_all(fd_, file_->content);
    std::string().swap(file_->content);
    return ec;
  }
  void close_file() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  const form_options& opts_;
  param_list& fields_;
  std::vector<uploaded_file>& files_;
  upload_observer* obs_;
  uploaded_file* file_ = nullptr;  // files_ does not grow while a file part is open
  int fd_ = -1;
  std::string field_name_, field_value_;
};

}  // namespace

int form_error_status(std::error_code ec) noexcept {
  if (ec == mp::errc::too_many_parts || ec == mp::errc::part_too_large) return 413;
  if (ec.category() == mp::error_category() || ec == errc::invalid_argument) return 400;
  if (ec == errc::timeout) return 408;
  return 500;
}

request::~request() { remove_temp_files(); }

void request::remove_temp_files() noexcept {
  for (auto& f : files_)
    if (!f.temp_path.empty()) ::unlink(f.temp_path.c_str());
  files_.clear();
}

swactor::task<std::error_code> request::read_form(upload_observer* observer, duration timeout) {
  if (!form_opts_) co_return make_error_code(errc::invalid_argument);
  if (form_read_) co_return std::error_code();  // already read (by the engine, on a whole-body route)
  form_read_ = true;
  const auto* ct = header("content-type");
  auto boundary = mp::boundary_of(ct ? std::string_view(*ct) : std::string_view());
  if (!boundary) co_return make_error_code(mp::errc::no_delimiter);
  const auto& o = *form_opts_;
  mp::parser parser(std::move(*boundary), {o.max_header_size, o.max_parts, o.max_part_size});
  form_.emplace();
  form_sink sink(o, *form_, files_, observer);
  if (!stream_) {
    // The body is already here (a request without a streamed body).
    auto ec = parser.feed(head_.body, sink);
    std::string().swap(head_.body);  // now in form() and files()
    if (ec) co_return ec;
    co_return parser.finish();
  }
  for (;;) {
    auto piece = co_await stream_->next(*this, timeout);
    if (!piece) co_return piece.error();
    if (piece->empty()) break;
    if (auto ec = parser.feed(*piece, sink)) {
      co_return ec;
    }
  }
  co_return parser.finish();
}

std::error_code request::keep_file(std::size_t index, const std::string& path) {
  if (index >= files_.size()) return make_error_code(errc::invalid_argument);
  auto& f = files_[index];
  if (!f.temp_path.empty()) {
    if (::rename(f.temp_path.c_str(), path.c_str()) != 0) return last_errno();
    f.temp_path.clear();
    return {};
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return last_errno();
  auto ec = write_all(fd, f.content);
  ::close(fd);
  return ec;
}

}  // namespace swactor::http
