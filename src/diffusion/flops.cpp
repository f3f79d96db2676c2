#include "diffusion/flops.h"

#include <algorithm>

namespace fairdiff {
namespace {

double conv(int64_t in, int64_t out, int64_t k, int64_t h, int64_t w) {
  return 2.0 * in * out * k * k * h * w;
}

double resnet(int64_t in, int64_t out, int64_t h, int64_t w) {
  return conv(in, out, 3, h, w) + conv(out, out, 3, h, w) + (in != out ? conv(in, out, 1, h, w) : 0.0);
}

// Transformer2DModel with one BasicTransformerBlock: projections, self- and cross-attention, GEGLU MLP.
double transformer(int64_t c, int64_t h, int64_t w, int64_t ctx_dim, int64_t tokens) {
  const double n = static_cast<double>(h * w);
  double f = 2 * (2.0 * n * c * c);                    // proj_in, proj_out
  f += 4 * (2.0 * n * c * c) + 2 * (2.0 * n * n * c);  // attn1: q k v o, QK^T and PV
  f += 2 * (2.0 * n * c * c) + 2 * (2.0 * tokens * ctx_dim * c) + 2 * (2.0 * n * tokens * c);  // attn2
  f += 2.0 * n * c * 8 * c + 2.0 * n * 4 * c * c;  // GEGLU in (to 2 x 4C), out
  return f;
}

double spatial_attention(int64_t c, int64_t h, int64_t w) {
  const double n = static_cast<double>(h * w);
  return 4 * (2.0 * n * c * c) + 2 * (2.0 * n * n * c);
}

}  // namespace

double unet_flops(const UNet2DConditionConfig& c, int64_t h, int64_t w, int64_t tokens) {
  const auto& boc = c.block_out_channels;
  const size_t blocks = boc.size();
  double f = conv(c.in_channels, boc[0], 3, h, w);
  std::vector<int64_t> skip_channels{boc[0]};
  int64_t ch = boc[0];
  for (size_t i = 0; i < blocks; ++i) {
    for (int64_t l = 0; l < c.layers_per_block; ++l) {
      f += resnet(l == 0 ? ch : boc[i], boc[i], h, w);
      if (c.down_block_types[i] == "CrossAttnDownBlock2D")
        f += transformer(boc[i], h, w, c.cross_attention_dim, tokens);
      skip_channels.push_back(boc[i]);
    }
    ch = boc[i];
    if (i + 1 != blocks) {
      h = (h + 1) / 2;
      w = (w + 1) / 2;
      f += conv(ch, ch, 3, h, w);
      skip_channels.push_back(ch);
    }
  }
  f += 2 * resnet(ch, ch, h, w) + transformer(ch, h, w, c.cross_attention_dim, tokens);
  for (size_t i = 0; i < blocks; ++i) {
    const int64_t out = boc[blocks - 1 - i];
    for (int64_t l = 0; l <= c.layers_per_block; ++l) {
      const int64_t skip = skip_channels.back();
      skip_channels.pop_back();
      f += resnet(ch + skip, out, h, w);
      ch = out;
      if (c.up_block_types[i] == "CrossAttnUpBlock2D") f += transformer(out, h, w, c.cross_attention_dim, tokens);
    }
    if (i + 1 != blocks) {
      h *= 2;
      w *= 2;
      f += conv(ch, ch, 3, h, w);
    }
  }
  return f + conv(boc[0], c.out_channels, 3, h, w);
}

double vae_decode_flops(const AutoencoderKLConfig& c, int64_t h, int64_t w) {
  std::vector<int64_t> rev(c.block_out_channels.rbegin(), c.block_out_channels.rend());
  double f = conv(c.latent_channels, c.latent_channels, 1, h, w) + conv(c.latent_channels, rev[0], 3, h, w);
  f += 2 * resnet(rev[0], rev[0], h, w) + spatial_attention(rev[0], h, w);
  int64_t ch = rev[0];
  for (size_t i = 0; i < rev.size(); ++i) {
    for (int64_t l = 0; l <= c.layers_per_block; ++l) {
      f += resnet(ch, rev[i], h, w);
      ch = rev[i];
    }
    if (i + 1 != rev.size()) {
      h *= 2;
      w *= 2;
      f += conv(ch, ch, 3, h, w);
    }
  }
  return f + conv(ch, c.out_channels, 3, h, w);
}

}  // namespace fairdiff
