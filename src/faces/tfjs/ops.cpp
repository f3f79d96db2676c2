// Kernels of the TF.js graph runtime: TensorFlow op semantics on LibTorch.
//
// Shape legend: x [N, H, W, C] (NHWC, TensorFlow's layout); conv filters [KH, KW, C_in, C_out] become torch's
// [C_out, C_in, KH, KW]; depthwise filters [KH, KW, C, M] become [C * M, 1, KH, KW] with groups = C.
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "faces/tfjs/graph_model.h"

namespace fairdiff::tfjs {
namespace {

namespace F = torch::nn::functional;

// The largest stride, dilation, window or padding a model may ask for (real models use single digits); it keeps
// the window arithmetic of same_padding far from overflow.
constexpr int64_t kMaxWindow = 1 << 16;

std::string base64_decode(const std::string& in) {
  static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t value = 0;  // only the bits not yet written are kept, so the shift never overflows
  int bits = -8;
  for (char c : in) {
    size_t pos = chars.find(c);
    if (pos == std::string::npos) break;
    value = ((value << 6) | static_cast<uint32_t>(pos)) & 0xFFFFu;
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((value >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

// Attribute readers: TF.js stores strings base64-encoded and integers as decimal strings. A value of the wrong
// type is an InputError naming the attribute (GraphModel adds the file and the node).
const Json* attr_field(const GraphNode& n, const std::string& key, const char* field) {
  if (!n.attr.contains(key) || !n.attr[key].is_object() || !n.attr[key].contains(field)) return nullptr;
  return &n.attr[key][field];
}

std::string decoded_string(const Json& v, const std::string& key) {
  if (!v.is_string()) throw InputError("attribute '" + key + "' must hold base64 strings");
  return base64_decode(v.get<std::string>());
}

std::string attr_string(const GraphNode& n, const std::string& key, const std::string& fallback = "") {
  const Json* v = attr_field(n, key, "s");
  return v ? decoded_string(*v, key) : fallback;
}

int64_t to_int(const Json& v, const std::string& key) {
  if (v.is_string()) {
    const std::string text = v.get<std::string>();
    int64_t out = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (!text.empty() && ec == std::errc() && end == text.data() + text.size()) return out;
  } else if (v.is_number_integer()) {
    return json_value<int64_t>(v, "attribute '" + key + "'");
  }
  throw InputError("attribute '" + key + "' holds " + v.dump() + ", not a whole number");
}

int64_t attr_int(const GraphNode& n, const std::string& key, int64_t fallback) {
  const Json* v = attr_field(n, key, "i");
  return v ? to_int(*v, key) : fallback;
}

bool attr_bool(const GraphNode& n, const std::string& key, bool fallback) {
  const Json* v = attr_field(n, key, "b");
  if (!v) return fallback;
  if (!v->is_boolean()) throw InputError("attribute '" + key + "' must be true or false");
  return v->get<bool>();
}

std::vector<int64_t> attr_ints(const GraphNode& n, const std::string& key) {
  std::vector<int64_t> out;
  const Json* list = attr_field(n, key, "list");
  if (list && list->is_object() && list->contains("i")) {
    if (!(*list)["i"].is_array()) throw InputError("attribute '" + key + "' must hold a list of integers");
    for (const auto& v : (*list)["i"]) out.push_back(to_int(v, key));
  }
  return out;
}

std::vector<std::string> attr_strings(const GraphNode& n, const std::string& key) {
  std::vector<std::string> out;
  const Json* list = attr_field(n, key, "list");
  if (list && list->is_object() && list->contains("s")) {
    if (!(*list)["s"].is_array()) throw InputError("attribute '" + key + "' must hold a list of strings");
    for (const auto& v : (*list)["s"]) out.push_back(decoded_string(v, key));
  }
  return out;
}

std::vector<int64_t> int_values(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kCPU).to(torch::kLong).contiguous().reshape({-1});
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

void require_nhwc(const GraphNode& n) {
  const std::string format = attr_string(n, "data_format", "NHWC");
  if (format != "NHWC") throw UnsupportedError("data_format " + format + " (only NHWC is supported)");
}

// TensorFlow's padding for one spatial dimension: {before, after}.
std::pair<int64_t, int64_t> same_padding(int64_t in, int64_t kernel, int64_t stride, int64_t dilation) {
  const int64_t out = (in + stride - 1) / stride;
  const int64_t effective = (kernel - 1) * dilation + 1;
  const int64_t total = std::max<int64_t>((out - 1) * stride + effective - in, 0);
  return {total / 2, total - total / 2};
}

struct Conv2dSpec {
  std::string padding;             // SAME, VALID or EXPLICIT
  std::vector<int64_t> explicit_;  // 8 values for EXPLICIT
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
};

Conv2dSpec conv_spec(const GraphNode& n) {
  require_nhwc(n);
  Conv2dSpec s;
  s.padding = attr_string(n, "padding", "VALID");
  auto strides = attr_ints(n, "strides");
  auto dilations = attr_ints(n, "dilations");
  if (strides.size() == 4) s.stride_h = strides[1], s.stride_w = strides[2];
  if (dilations.size() == 4) s.dilation_h = dilations[1], s.dilation_w = dilations[2];
  for (int64_t v : {s.stride_h, s.stride_w, s.dilation_h, s.dilation_w}) {
    if (v < 1 || v > kMaxWindow) throw InputError("stride or dilation " + std::to_string(v) + " (expected 1 to 65536)");
  }
  if (s.padding == "EXPLICIT") s.explicit_ = attr_ints(n, "explicit_paddings");
  for (int64_t v : s.explicit_) {
    if (v < 0 || v > kMaxWindow) throw InputError("explicit padding " + std::to_string(v) + " (expected 0 to 65536)");
  }
  if (s.padding != "SAME" && s.padding != "VALID" && !(s.padding == "EXPLICIT" && s.explicit_.size() == 8)) {
    throw UnsupportedError("padding '" + s.padding + "'");
  }
  return s;
}

// Pads x [N, H, W, C] for the window, in NHWC (so the result stays NHWC-contiguous); returns the symmetric
// padding left for the torch op (always 0 here: padding is applied explicitly when asymmetric).
torch::Tensor pad_for_window(const torch::Tensor& x, const Conv2dSpec& s, int64_t kh, int64_t kw, double value) {
  int64_t top = 0, bottom = 0, left = 0, right = 0;
  if (s.padding == "SAME") {
    std::tie(top, bottom) = same_padding(x.size(1), kh, s.stride_h, s.dilation_h);
    std::tie(left, right) = same_padding(x.size(2), kw, s.stride_w, s.dilation_w);
  } else if (s.padding == "EXPLICIT") {
    top = s.explicit_[2], bottom = s.explicit_[3], left = s.explicit_[4], right = s.explicit_[5];
  }
  if (top == 0 && bottom == 0 && left == 0 && right == 0) return x;
  return torch::constant_pad_nd(x, {0, 0, left, right, top, bottom}, value);
}

torch::Tensor to_nchw_view(const torch::Tensor& nhwc) {
  return nhwc.permute({0, 3, 1, 2});
}
torch::Tensor to_nhwc_view(const torch::Tensor& nchw) {
  return nchw.permute({0, 2, 3, 1});
}

// Applies the fused ops after a convolution or matmul (BiasAdd first, then one activation).
torch::Tensor apply_fused(torch::Tensor y, const std::vector<std::string>& fused, bool bias_in_op) {
  for (const auto& f : fused) {
    if (f == "BiasAdd") {
      if (!bias_in_op) throw UnsupportedError("BiasAdd without a bias input");
    } else if (f == "Relu") {
      y = torch::relu_(y);
    } else if (f == "Relu6") {
      y = torch::clamp_(y, 0.0, 6.0);
    } else {
      throw UnsupportedError("fused op '" + f + "'");
    }
  }
  return y;
}

Kernel conv2d_kernel(const GraphNode& n, const std::function<torch::Tensor(size_t)>& constant, const HoldWeight& hold,
                     bool depthwise) {
  Conv2dSpec s = conv_spec(n);
  torch::Tensor filter = constant(1);
  if (!filter.defined() || filter.dim() != 4) throw UnsupportedError("a non-constant or non-4-D filter");
  std::vector<std::string> fused = attr_strings(n, "fused_ops");
  const bool has_bias = !fused.empty() && fused[0] == "BiasAdd";
  torch::Tensor bias;
  if (has_bias) {
    bias = constant(2);
    if (!bias.defined()) throw UnsupportedError("a non-constant bias");
    bias = bias.to(torch::kFloat).contiguous();
  }
  const int64_t kh = filter.size(0), kw = filter.size(1);
  int64_t groups = 1;
  torch::Tensor weight;
  if (depthwise) {
    groups = filter.size(2);
    weight = filter.permute({2, 3, 0, 1}).reshape({filter.size(2) * filter.size(3), 1, kh, kw});  // [C*M, 1, KH, KW]
  } else {
    weight = filter.permute({3, 2, 0, 1});  // [C_out, C_in, KH, KW]
  }
  weight = weight.to(torch::kFloat).contiguous(at::MemoryFormat::ChannelsLast);
  if (hold) {
    hold(1, weight);
    if (has_bias) hold(2, bias);
  }
  return [=](const Values& in) {
    torch::Tensor x = pad_for_window(in[0], s, kh, kw, 0.0).contiguous();
    torch::Tensor y =
        torch::conv2d(to_nchw_view(x).contiguous(at::MemoryFormat::ChannelsLast), weight,
                      has_bias ? bias : torch::Tensor(), std::vector<int64_t>{s.stride_h, s.stride_w},
                      std::vector<int64_t>{0, 0}, std::vector<int64_t>{s.dilation_h, s.dilation_w}, groups);
    return Values{apply_fused(to_nhwc_view(y), fused, has_bias)};
  };
}

Kernel matmul_kernel(const GraphNode& n, const std::function<torch::Tensor(size_t)>& constant, const HoldWeight& hold) {
  const bool ta = attr_bool(n, "transpose_a", false), tb = attr_bool(n, "transpose_b", false);
  std::vector<std::string> fused = attr_strings(n, "fused_ops");
  const bool has_bias = !fused.empty() && fused[0] == "BiasAdd";
  torch::Tensor b = constant(1), bias = has_bias ? constant(2) : torch::Tensor();
  if (hold && b.defined()) hold(1, b);
  if (hold && bias.defined()) hold(2, bias);
  return [=](const Values& in) {
    torch::Tensor a = ta ? in[0].t() : in[0];
    torch::Tensor w = b.defined() ? b : in[1];
    if (tb) w = w.t();
    torch::Tensor y = has_bias ? torch::addmm(bias.defined() ? bias : in[2], a, w) : torch::mm(a, w);
    return Values{apply_fused(y, fused, has_bias)};
  };
}

Kernel pool_kernel(const GraphNode& n, bool max) {
  Conv2dSpec s = conv_spec(n);
  auto ksize = attr_ints(n, "ksize");
  if (ksize.size() != 4 || ksize[0] != 1 || ksize[3] != 1) throw UnsupportedError("pooling ksize other than [1,h,w,1]");
  const int64_t kh = ksize[1], kw = ksize[2];
  if (kh < 1 || kw < 1 || kh > kMaxWindow || kw > kMaxWindow) throw InputError("pooling window out of range");
  if (!max) throw UnsupportedError("AvgPool");
  return [=](const Values& in) {
    torch::Tensor x = pad_for_window(in[0], s, kh, kw, -std::numeric_limits<double>::infinity());
    torch::Tensor y =
        torch::max_pool2d(to_nchw_view(x), std::vector<int64_t>{kh, kw}, std::vector<int64_t>{s.stride_h, s.stride_w});
    return Values{to_nhwc_view(y)};
  };
}

// Normalises a possibly negative axis.
int64_t axis_of(int64_t axis, int64_t rank) {
  return axis < 0 ? axis + rank : axis;
}

enum class Reduction { mean, max, sum };

Kernel reduce_kernel(const GraphNode& n, Reduction reduction) {
  const bool keep = attr_bool(n, "keep_dims", false);
  return [=](const Values& in) {
    std::vector<int64_t> axes;
    for (int64_t a : int_values(in[1])) axes.push_back(axis_of(a, in[0].dim()));
    torch::Tensor y = in[0];
    if (reduction == Reduction::max) {
      std::sort(axes.rbegin(), axes.rend());
      for (int64_t a : axes) y = std::get<0>(y.max(a, keep));
    } else if (reduction == Reduction::sum) {
      y = y.sum(axes, keep);
    } else {
      y = y.mean(axes, keep);
    }
    return Values{y};
  };
}

Kernel strided_slice_kernel(const GraphNode& n) {
  const int64_t begin_mask = attr_int(n, "begin_mask", 0), end_mask = attr_int(n, "end_mask", 0);
  const int64_t shrink = attr_int(n, "shrink_axis_mask", 0);
  if (attr_int(n, "ellipsis_mask", 0) != 0 || attr_int(n, "new_axis_mask", 0) != 0) {
    throw UnsupportedError("StridedSlice with ellipsis or new-axis masks");
  }
  return [=](const Values& in) {
    auto begin = int_values(in[1]), end = int_values(in[2]), strides = int_values(in[3]);
    torch::Tensor y = in[0];
    std::vector<int64_t> squeeze;
    for (size_t d = 0; d < begin.size(); ++d) {
      const int64_t size = y.size(static_cast<int64_t>(d));
      const int64_t step = strides[d];
      if (step <= 0) throw UnsupportedError("StridedSlice with a non-positive stride");
      int64_t b = (begin_mask >> d) & 1 ? 0 : begin[d];
      int64_t e = (end_mask >> d) & 1 ? size : end[d];
      if (b < 0) b += size;
      if (e < 0) e += size;
      if ((shrink >> d) & 1) {
        e = b + 1;
        squeeze.push_back(static_cast<int64_t>(d));
      }
      b = std::clamp<int64_t>(b, 0, size);
      e = std::clamp<int64_t>(e, b, size);
      y = y.slice(static_cast<int64_t>(d), b, e, step);
    }
    for (auto it = squeeze.rbegin(); it != squeeze.rend(); ++it) y = y.squeeze(*it);
    return Values{y};
  };
}

Kernel resize_bilinear_kernel(const GraphNode& n) {
  const bool align = attr_bool(n, "align_corners", false), half = attr_bool(n, "half_pixel_centers", false);
  if (!align && !half) throw UnsupportedError("ResizeBilinear in legacy mode (align_corners = half_pixel = false)");
  return [=](const Values& in) {
    auto size = int_values(in[1]);
    torch::Tensor y = F::interpolate(to_nchw_view(in[0]), F::InterpolateFuncOptions()
                                                              .size(std::vector<int64_t>{size[0], size[1]})
                                                              .mode(torch::kBilinear)
                                                              .align_corners(align));
    return Values{to_nhwc_view(y)};
  };
}

Kernel depth_to_space_kernel(const GraphNode& n) {
  require_nhwc(n);
  const int64_t b = attr_int(n, "block_size", 0);
  if (b < 1) throw UnsupportedError("DepthToSpace without a block size");
  if (b > kMaxWindow) throw InputError("DepthToSpace block size " + std::to_string(b) + " (expected up to 65536)");
  return [=](const Values& in) {
    const torch::Tensor& x = in[0];
    const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3) / (b * b);
    torch::Tensor y = x.reshape({N, H, W, b, b, C}).permute({0, 1, 3, 2, 4, 5});  // [N, H, b, W, b, C]
    return Values{y.reshape({N, H * b, W * b, C})};
  };
}

template <typename Fn>
Kernel binary(Fn fn) {
  return [fn](const Values& in) { return Values{fn(in[0], in[1])}; };
}

template <typename Fn>
Kernel unary(Fn fn) {
  return [fn](const Values& in) { return Values{fn(in[0])}; };
}

const std::set<std::string>& supported_ops() {
  static const std::set<std::string> ops = {"Const",
                                            "Placeholder",
                                            "Identity",
                                            "Conv2D",
                                            "_FusedConv2D",
                                            "DepthwiseConv2dNative",
                                            "FusedDepthwiseConv2dNative",
                                            "MatMul",
                                            "_FusedMatMul",
                                            "MaxPool",
                                            "Add",
                                            "AddV2",
                                            "Sub",
                                            "Mul",
                                            "RealDiv",
                                            "Minimum",
                                            "Maximum",
                                            "Relu",
                                            "Relu6",
                                            "Sigmoid",
                                            "Tanh",
                                            "Softmax",
                                            "Abs",
                                            "Square",
                                            "Rsqrt",
                                            "Mean",
                                            "Max",
                                            "Sum",
                                            "Pad",
                                            "PadV2",
                                            "Reshape",
                                            "Shape",
                                            "StridedSlice",
                                            "Pack",
                                            "ConcatV2",
                                            "ResizeBilinear",
                                            "DepthToSpace",
                                            "Squeeze",
                                            "ExpandDims",
                                            "Cast"};
  return ops;
}

}  // namespace

bool op_supported(const std::string& op) {
  return supported_ops().count(op) > 0;
}

Kernel compile_node(const GraphNode& n, const std::function<torch::Tensor(size_t)>& constant, const HoldWeight& hold) {
  const std::string& op = n.op;
  if (op == "Identity") return [](const Values& in) { return Values{in[0]}; };
  if (op == "Conv2D" || op == "_FusedConv2D") return conv2d_kernel(n, constant, hold, false);
  if (op == "DepthwiseConv2dNative" || op == "FusedDepthwiseConv2dNative")
    return conv2d_kernel(n, constant, hold, true);
  if (op == "MatMul" || op == "_FusedMatMul") return matmul_kernel(n, constant, hold);
  if (op == "MaxPool") return pool_kernel(n, true);
  if (op == "Add" || op == "AddV2") return binary([](const auto& a, const auto& b) { return a + b; });
  if (op == "Sub") return binary([](const auto& a, const auto& b) { return a - b; });
  if (op == "Mul") return binary([](const auto& a, const auto& b) { return a * b; });
  if (op == "RealDiv") return binary([](const auto& a, const auto& b) { return a / b; });
  if (op == "Minimum") return binary([](const auto& a, const auto& b) { return torch::minimum(a, b.to(a.dtype())); });
  if (op == "Maximum") return binary([](const auto& a, const auto& b) { return torch::maximum(a, b.to(a.dtype())); });
  if (op == "Relu") return unary([](const auto& x) { return torch::relu(x); });
  if (op == "Relu6") return unary([](const auto& x) { return torch::clamp(x, 0.0, 6.0); });
  if (op == "Sigmoid") return unary([](const auto& x) { return torch::sigmoid(x); });
  if (op == "Tanh") return unary([](const auto& x) { return torch::tanh(x); });
  if (op == "Softmax") return unary([](const auto& x) { return torch::softmax(x, -1); });
  if (op == "Abs") return unary([](const auto& x) { return torch::abs(x); });
  if (op == "Square") return unary([](const auto& x) { return x * x; });
  if (op == "Rsqrt") return unary([](const auto& x) { return torch::rsqrt(x); });
  if (op == "Mean") return reduce_kernel(n, Reduction::mean);
  if (op == "Max") return reduce_kernel(n, Reduction::max);
  if (op == "Sum") return reduce_kernel(n, Reduction::sum);
  if (op == "Pad" || op == "PadV2") {
    return [](const Values& in) {
      auto p = int_values(in[1]);  // [rank, 2], outermost dimension first
      std::vector<int64_t> torch_pad;
      for (int64_t d = static_cast<int64_t>(p.size() / 2) - 1; d >= 0; --d) {
        torch_pad.push_back(p[2 * d]);
        torch_pad.push_back(p[2 * d + 1]);
      }
      const double value = in.size() > 2 ? in[2].item<double>() : 0.0;
      return Values{torch::constant_pad_nd(in[0], torch_pad, value)};
    };
  }
  if (op == "Reshape") return [](const Values& in) { return Values{in[0].reshape(int_values(in[1]))}; };
  if (op == "Shape") {
    return [](const Values& in) { return Values{torch::tensor(in[0].sizes().vec(), torch::kLong).to(torch::kInt)}; };
  }
  if (op == "StridedSlice") return strided_slice_kernel(n);
  if (op == "Pack") {
    const int64_t axis = attr_int(n, "axis", 0);
    return [axis](const Values& in) {
      return Values{torch::stack(std::vector<torch::Tensor>(in.begin(), in.end()), axis_of(axis, in[0].dim() + 1))};
    };
  }
  if (op == "ConcatV2") {
    return [](const Values& in) {
      const int64_t axis = int_values(in.back())[0];
      std::vector<torch::Tensor> parts(in.begin(), in.end() - 1);
      return Values{torch::cat(parts, axis_of(axis, parts[0].dim()))};
    };
  }
  if (op == "ResizeBilinear") return resize_bilinear_kernel(n);
  if (op == "DepthToSpace") return depth_to_space_kernel(n);
  if (op == "Squeeze") {
    auto dims = attr_ints(n, "squeeze_dims");
    return [dims](const Values& in) {
      if (dims.empty()) return Values{in[0].squeeze()};
      std::vector<int64_t> axes;
      for (int64_t d : dims) axes.push_back(axis_of(d, in[0].dim()));
      std::sort(axes.rbegin(), axes.rend());
      torch::Tensor y = in[0];
      for (int64_t a : axes) y = y.squeeze(a);
      return Values{y};
    };
  }
  if (op == "ExpandDims") {
    return [](const Values& in) { return Values{in[0].unsqueeze(axis_of(int_values(in[1])[0], in[0].dim() + 1))}; };
  }
  if (op == "Cast") {
    const Json* type = attr_field(n, "DstT", "type");
    if (type && !type->is_string()) throw InputError("attribute 'DstT' must name a type");
    const std::string to = type ? type->get<std::string>() : "";
    torch::Dtype dtype = torch::kFloat;
    if (to == "DT_INT32")
      dtype = torch::kInt;
    else if (to == "DT_BOOL")
      dtype = torch::kBool;
    else if (to != "DT_FLOAT")
      throw UnsupportedError("Cast to " + to);
    return [dtype](const Values& in) { return Values{in[0].to(dtype)}; };
  }
  throw UnsupportedError("op '" + op + "' is not supported by fairdiff's TF.js runtime");
}

}  // namespace fairdiff::tfjs
