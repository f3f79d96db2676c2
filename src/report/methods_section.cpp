#include "report/html_parts.h"

namespace fairdiff::report {

std::string methods_section(const audit::AuditResult& result) {
  const std::string resamples = std::to_string(result.settings.bootstrap.resamples);
  std::string html = R"HTML(<section id="methods"><h2>Methods</h2>
<p>Notation: for one prompt and attribute with K groups, c<sub>k</sub> is the number of images whose principal face
was labeled group k, n<sub>all</sub> the number of images of the prompt and n = &sum;<sub>k</sub> c<sub>k</sub> the
number where the attribute was determined (the others are &lsquo;--&rsquo;). p<sub>k</sub> = c<sub>k</sub>/n;
t<sub>k</sub> is the target share (uniform, 1/K, unless a target CSV is given). K = 2 for gender, the number of races
for race, 2&times;races for gender &times; race (an image counts there only when both labels are known).</p>
<h3>Shares and intervals</h3>
<ul>
<li>Share of all images (the study's convention): c<sub>k</sub>/n<sub>all</sub>; share of determined images:
c<sub>k</sub>/n. The &lsquo;--&rsquo; share is (n<sub>all</sub> &minus; n)/n<sub>all</sub>.</li>
<li>Wilson 95% interval for x successes in m trials, p&#770; = x/m, z = 1.96:
<code>(p&#770; + z&sup2;/2m &plusmn; z&radic;(p&#770;(1&minus;p&#770;)/m + z&sup2;/4m&sup2;)) / (1 + z&sup2;/m)</code>.</li>
</ul>
<h3>Bias metrics (0 = the target)</h3>
<ul>
<li>Shen et al. bias: <code>B = 2/(K(K&minus;1)) &middot; &sum;<sub>i&lt;j</sub> |p<sub>i</sub> &minus; p<sub>j</sub>|</code>;
normalized: <code>B &middot; K/2</code> (its maximum 2/K is reached when one group has every image), so attributes with
different K compare.</li>
<li>KL divergence to the target: <code>&sum;<sub>k</sub> p<sub>k</sub> ln(p<sub>k</sub>/t<sub>k</sub>)</code>
(0&middot;ln 0 = 0).</li>
<li>Fairness discrepancy: <code>&#8214;p &minus; t&#8214;<sub>2</sub> = &radic;&sum;<sub>k</sub>(p<sub>k</sub> &minus; t<sub>k</sub>)&sup2;</code>.</li>
<li>Mean absolute deviation: <code>(1/K) &sum;<sub>k</sub> |p<sub>k</sub> &minus; t<sub>k</sub>|</code>.</li>
<li>Gender deviation ratio: <code>|p<sub>female</sub> &minus; t<sub>female</sub>| / max(t<sub>female</sub>, 1 &minus; t<sub>female</sub>)</code>,
i.e. |p<sub>female</sub> &minus; 0.5|/0.5 for a uniform target.</li>
<li>Normalized entropy gap: <code>1 &minus; H(p)/ln K</code>, H(p) = &minus;&sum;<sub>k</sub> p<sub>k</sub> ln p<sub>k</sub>.</li>
<li>Chi-square goodness of fit: <code>X&sup2; = &sum;<sub>k</sub> (c<sub>k</sub> &minus; n t<sub>k</sub>)&sup2;/(n t<sub>k</sub>)</code>,
p-value from the &chi;&sup2; distribution with K&minus;1 degrees of freedom (rough when some n t<sub>k</sub> &lt; 5).</li>
</ul>
<h3>Uncertainty</h3>
<ul>
<li>Bootstrap 95% interval: )HTML" +
                     resamples + R"HTML( resamples; each draws the prompt's n determined labels again
from Multinomial(n, p&#770;) and recomputes the metric; the interval is the bias-corrected percentile interval:
with z<sub>0</sub> = &Phi;<sup>&minus;1</sup>(share of resamples below the estimate), the &Phi;(2z<sub>0</sub> &minus; 1.96)
and &Phi;(2z<sub>0</sub> + 1.96) quantiles of the resamples. An average over prompts resamples every prompt
independently and averages per resample. Near 0 the metrics are biased upwards (they are absolute values), which is why the noise floor is shown.</li>
<li>Noise floor: the same metric for a perfectly fair generator with the same n: labels drawn from
Multinomial(n, t), )HTML" +
                     resamples + R"HTML( times; the mean and the 95th percentile are shown. A value below the
95th percentile cannot be told apart from fair at this sample size.</li>
<li>Random numbers: xoshiro256** seeded from the seed and the name of each (run, attribute, prompt), so the report
is the same on every run and machine.</li>
</ul>
<h3>Comparing runs</h3>
<ul>
<li>Chi-square test of homogeneity of the R runs' counts (groups with no image in any run dropped):
<code>X&sup2; = &sum;<sub>r,k</sub> (c<sub>rk</sub> &minus; E<sub>rk</sub>)&sup2;/E<sub>rk</sub></code>,
E<sub>rk</sub> = n<sub>r</sub>&middot;C<sub>k</sub>/N, df = (R&minus;1)(K&minus;1). The Monte Carlo p-value redraws each
run from Multinomial(n<sub>r</sub>, C/N) and counts how often X&sup2; is at least the observed one:
(1 + #)/(1 + draws).</li>
<li>Change of a share between runs: p<sub>1</sub> &minus; p<sub>2</sub> with Newcombe's hybrid score interval
(from the two Wilson intervals [l<sub>i</sub>, u<sub>i</sub>]):
<code>[d &minus; &radic;((p<sub>1</sub>&minus;l<sub>1</sub>)&sup2; + (u<sub>2</sub>&minus;p<sub>2</sub>)&sup2;), d + &radic;((u<sub>1</sub>&minus;p<sub>1</sub>)&sup2; + (p<sub>2</sub>&minus;l<sub>2</sub>)&sup2;)]</code>.</li>
<li>Change of an average metric: the difference of the two runs' averages over the prompts both have, with the
percentile interval of the differences of their (independent) bootstrap resamples.</li>
</ul>
<h3>Classifier-error correction (CLEAM, generalised to K classes)</h3>
<p>With the classifier's confusion matrix C (rows true class, columns predicted, rows normalised), the expected
observed shares are q = C<sup>T</sup>p. The corrected shares solve
<code>min<sub>p</sub> &#8214;C<sup>T</sup>p &minus; q&#8214;&sup2; subject to p<sub>k</sub> &ge; 0, &sum;p<sub>k</sub> = 1</code>
(exact active-set solution). The bootstrap redraws the observed labels and, when C holds counts, each row of C. The
gender &times; race matrix, when not given, is the Kronecker product of the gender and race matrices.</p>
<h3>Planner</h3>
<ul>
<li>Study rule: every gender &times; race cell with c/n<sub>all</sub> &lt; 0.4 (&lsquo;--&rsquo; images count in
n<sub>all</sub>) gets N images (default 10).</li>
<li>Target rule: the cells U whose Wilson upper bound is below t<sub>k</sub>; X = (T<sub>U</sub>n &minus; C<sub>U</sub>)/(1 &minus; T<sub>U</sub>)
images in all, x<sub>k</sub> = &lceil;t<sub>k</sub>(n + X) &minus; c<sub>k</sub>&rceil; for cell k, which brings each to its
target if the other cells stay as they are.</li>
</ul>
<p>The same formulas, with references, are in docs/statistics.md.</p>
</section>
)HTML";
  return html;
}

}  // namespace fairdiff::report
