#include "diffusion/unet_2d_blocks.h"

namespace fairdiff {
namespace {

Transformer2DModel make_transformer(const UNetBlockOptions& o, int64_t channels) {
  Transformer2DOptions t;
  t.heads = o.heads;
  t.dim_head = channels / o.heads;
  t.in_channels = channels;
  t.cross_attention_dim = o.cross_attention_dim;
  t.norm_groups = o.norm_groups;
  t.use_linear_projection = o.use_linear_projection;
  t.upcast_attention = o.upcast_attention;
  return Transformer2DModel(t);
}

ResnetBlock2D make_resnet(const UNetBlockOptions& o, int64_t in, int64_t out) {
  ResnetOptions r;
  r.in_channels = in;
  r.out_channels = out;
  r.temb_channels = o.temb_channels;
  r.groups = o.norm_groups;
  r.eps = o.norm_eps;
  return ResnetBlock2D(r);
}

}  // namespace

UNetDownBlockImpl::UNetDownBlockImpl(const UNetBlockOptions& o) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (o.cross_attention) attentions = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_layers; ++i) {
    resnets->push_back(make_resnet(o, i == 0 ? o.in_channels : o.out_channels, o.out_channels));
    if (o.cross_attention) attentions->push_back(make_transformer(o, o.out_channels));
  }
  if (o.add_sampler) {
    downsamplers =
        register_module("downsamplers", torch::nn::ModuleList(Downsample2D(o.out_channels, o.downsample_padding)));
  }
}

torch::Tensor UNetDownBlockImpl::forward(torch::Tensor x, const torch::Tensor& temb, const torch::Tensor& context,
                                         std::vector<torch::Tensor>& skips) {
  for (size_t i = 0; i < resnets->size(); ++i) {
    x = resnets[i]->as<ResnetBlock2D>()->forward(x, temb);
    if (attentions) x = attentions[i]->as<Transformer2DModel>()->forward(x, context);
    skips.push_back(x);
  }
  if (downsamplers) {
    x = downsamplers[0]->as<Downsample2D>()->forward(x);
    skips.push_back(x);
  }
  return x;
}

UNetMidBlock2DCrossAttnImpl::UNetMidBlock2DCrossAttnImpl(const UNetBlockOptions& o) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  attentions = register_module("attentions", torch::nn::ModuleList());
  resnets->push_back(make_resnet(o, o.in_channels, o.in_channels));
  for (int64_t i = 0; i < o.num_layers; ++i) {
    attentions->push_back(make_transformer(o, o.in_channels));
    resnets->push_back(make_resnet(o, o.in_channels, o.in_channels));
  }
}

torch::Tensor UNetMidBlock2DCrossAttnImpl::forward(torch::Tensor x, const torch::Tensor& temb,
                                                   const torch::Tensor& context) {
  x = resnets[0]->as<ResnetBlock2D>()->forward(x, temb);
  for (size_t i = 0; i < attentions->size(); ++i) {
    x = attentions[i]->as<Transformer2DModel>()->forward(x, context);
    x = resnets[i + 1]->as<ResnetBlock2D>()->forward(x, temb);
  }
  return x;
}

UNetUpBlockImpl::UNetUpBlockImpl(const UNetBlockOptions& o) {
  resnets = register_module("resnets", torch::nn::ModuleList());
  if (o.cross_attention) attentions = register_module("attentions", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.num_layers; ++i) {
    int64_t skip_channels = (i == o.num_layers - 1) ? o.in_channels : o.out_channels;
    int64_t resnet_in = (i == 0) ? o.prev_output_channels : o.out_channels;
    resnets->push_back(make_resnet(o, resnet_in + skip_channels, o.out_channels));
    if (o.cross_attention) attentions->push_back(make_transformer(o, o.out_channels));
  }
  if (o.add_sampler) upsamplers = register_module("upsamplers", torch::nn::ModuleList(Upsample2D(o.out_channels)));
}

torch::Tensor UNetUpBlockImpl::forward(torch::Tensor x, std::vector<torch::Tensor>& skips, const torch::Tensor& temb,
                                       const torch::Tensor& context,
                                       const std::optional<std::vector<int64_t>>& upsample_size) {
  for (size_t i = 0; i < resnets->size(); ++i) {
    torch::Tensor skip = skips.back();
    skips.pop_back();
    x = torch::cat({x, skip}, 1);  // [B, C + Cskip, H, W]
    x = resnets[i]->as<ResnetBlock2D>()->forward(x, temb);
    if (attentions) x = attentions[i]->as<Transformer2DModel>()->forward(x, context);
  }
  if (upsamplers) x = upsamplers[0]->as<Upsample2D>()->forward(x, upsample_size);
  return x;
}

}  // namespace fairdiff
