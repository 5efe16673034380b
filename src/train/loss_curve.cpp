#include "slm/train/loss_curve.h"

#include <algorithm>
#include <sstream>

#include <fmt/format.h>

namespace slm::train {

namespace {
std::string num(double v) { return std::isnan(v) ? "" : fmt::format("{:.6g}", v); }
}  // namespace

std::string loss_csv(const std::vector<LossPoint>& pts) {
  std::string s = "step,lr,train_loss,val_loss\n";
  for (const LossPoint& p : pts) s += fmt::format("{},{},{},{}\n", p.step, num(p.lr), num(p.train_loss), num(p.val_loss));
  return s;
}

Result<std::vector<LossPoint>> parse_loss_csv(const std::string& text) {
  std::vector<LossPoint> pts;
  std::istringstream in(text);
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    if (++line_no == 1 || line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string cell; std::getline(ls, cell, ',');) f.push_back(cell);
    while (f.size() < 4) f.emplace_back();
    LossPoint p;
    try {
      p.step = std::stoll(f[0]);
      p.lr = f[1].empty() ? NAN : std::stod(f[1]);
      p.train_loss = f[2].empty() ? NAN : std::stod(f[2]);
      p.val_loss = f[3].empty() ? NAN : std::stod(f[3]);
    } catch (const std::exception&) {
      return Status::Corruption(fmt::format("[loss curve] line {} is not step,lr,train_loss,val_loss: '{}'", line_no, line));
    }
    pts.push_back(p);
  }
  return pts;
}

std::string loss_svg(const std::vector<LossPoint>& pts, const std::string& title) {
  const double W = 640, H = 400, L = 60, R = 20, T = 30, B = 45;
  double x_max = 1, y_min = INFINITY, y_max = -INFINITY;
  for (const LossPoint& p : pts) {
    x_max = std::max(x_max, static_cast<double>(p.step));
    for (double v : {p.train_loss, p.val_loss})
      if (!std::isnan(v)) y_min = std::min(y_min, v), y_max = std::max(y_max, v);
  }
  if (!(y_min < y_max)) y_min = (std::isfinite(y_min) ? y_min : 0) - 1, y_max = y_min + 2;
  auto X = [&](double s) { return L + s / x_max * (W - L - R); };
  auto Y = [&](double v) { return T + (y_max - v) / (y_max - y_min) * (H - T - B); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
      "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"18\" text-anchor=\"middle\">{}</text>\n",
      W, H, W / 2, title);
  for (int i = 0; i <= 4; ++i) {  // grid and tick labels
    const double v = y_min + (y_max - y_min) * i / 4, y = Y(v), step = x_max * i / 4, x = X(step);
    s += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
                     "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.3g}</text>\n",
                     L, y, W - R, y, L - 5, y + 4, v);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.0f}</text>\n", x, H - B + 16, step);
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n", (L + W - R) / 2, H - 8);
  s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n", L, T,
                   W - L - R, H - T - B);
  const struct { double LossPoint::*field; const char* color; const char* name; } series[] = {
      {&LossPoint::train_loss, "#1f77b4", "train"}, {&LossPoint::val_loss, "#ff7f0e", "validation"}};
  int legend = 0;
  for (const auto& [field, color, name] : series) {
    std::string path;
    for (const LossPoint& p : pts)
      if (!std::isnan(p.*field)) path += fmt::format("{}{:.1f},{:.1f}", path.empty() ? "M" : " L", X(p.step), Y(p.*field));
    if (path.empty()) continue;
    s += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>\n", path, color);
    const double ly = T + 15 + 16 * legend++;
    s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>"
                     "<text x=\"{}\" y=\"{}\">{} loss</text>\n",
                     W - R - 130, ly, W - R - 110, ly, color, W - R - 105, ly + 4, name);
  }
  s += "</svg>\n";
  return s;
}

}  // namespace slm::train
