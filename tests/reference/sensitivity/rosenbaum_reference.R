# Reference values for esi.sensitivity.rosenbaum (tests/test_rosenbaum.py).
# Run from the project root:  Rscript tests/reference/sensitivity/rosenbaum_reference.R
# Writes tests/reference/sensitivity/rosenbaum_reference.csv.
#
# The formulas are those of rbounds 2.2 (psens, binarysens; Keele) and DOS2 (senWilcox,
# senWilcoxExact; Rosenbaum), written out here so that the reference needs base R only:
#   psens:      zeros dropped, average ranks; E = p * sum(r), V = p (1 - p) * sum(r^2);
#               P = 1 - pnorm((T - E) / sqrt(V)) with p = Gamma / (1 + Gamma) (upper),
#               1 / (1 + Gamma) (lower).
#   senWilcox:  the same, but |d| ranked with the zeros, which then get rank 0.
#   binarysens: P = sum(dbinom(t:n, n, p)).
#   exact:      distribution of sum(r_i B_i), B_i ~ Bernoulli(p), by convolution
#               (senWilcoxExact; here with doubled ranks so that tied average ranks work).

out <- file.path("tests", "reference", "sensitivity", "rosenbaum_reference.csv")

# Lead in the blood of children of battery-plant workers, 33 matched pairs (Morton et al.
# 1982, Am J Epidemiol 115:549), the worked example of Rosenbaum (2002) Observational
# Studies, 2nd ed., section 4.3.3; as printed in the rbounds::psens documentation.
lead_exposed <- c(38, 23, 41, 18, 37, 36, 23, 62, 31, 34, 24, 14, 21, 17, 16, 20,
                  15, 10, 45, 39, 22, 35, 49, 48, 44, 35, 43, 39, 34, 13, 73, 25, 27)
lead_control <- c(16, 18, 18, 24, 19, 11, 10, 15, 16, 18, 18, 13, 19, 10, 16,
                  16, 24, 13, 9, 14, 21, 19, 7, 18, 19, 12, 11, 22, 25, 16, 13, 11, 13)
lead <- lead_exposed - lead_control

# Small samples like the study's 14 pairs: one without ties or zeros, one with both.
small_noties <- c(1.5, -0.3, 2.2, 0.7, -1.1, 3.4, 0.2, 2.9, -0.6, 1.8, 4.1, -2.5, 0.9, 2.6)
small_ties <- c(2, -1, 0, 3, 2, -0.5, 1, 0, 4, 2, -2, 1, 3.5, 1)

signed_parts <- function(d, zero_method) {
  if (zero_method == "wilcox") {
    d <- d[d != 0]
    r <- rank(abs(d))
  } else {
    r <- rank(abs(d)) * (d != 0)
    keep <- d != 0
    r <- r[keep]
    d <- d[keep]
  }
  list(r = r, T = sum(r[d > 0]))
}

normal_tail <- function(parts, p) {
  1 - pnorm((parts$T - p * sum(parts$r)) / sqrt(p * (1 - p) * sum(parts$r^2)))
}

exact_tail <- function(parts, p) {
  u <- round(2 * parts$r)
  dist <- 1
  for (k in u) {
    dist <- c(dist * (1 - p), rep(0, k)) + c(rep(0, k), dist * p)
  }
  t2 <- round(2 * parts$T)
  sum(dist[(t2 + 1):length(dist)])
}

rows <- list()
add <- function(example, test, method, zero_method, gamma, upper, lower) {
  rows[[length(rows) + 1]] <<- data.frame(example = example, test = test, method = method,
                                          zero_method = zero_method, gamma = gamma,
                                          p_upper = upper, p_lower = lower)
}

gammas <- c(1, 1.5, 2, 2.5, 3, 4, 4.25, 5, 6)
for (zm in c("wilcox", "pratt")) {
  parts <- signed_parts(lead, zm)
  for (g in gammas) {
    add("lead", "wilcoxon", "normal", zm, g,
        normal_tail(parts, g / (1 + g)), normal_tail(parts, 1 / (1 + g)))
  }
}
for (ex in c("small_noties", "small_ties")) {
  d <- get(ex)
  for (zm in c("wilcox", "pratt")) {
    parts <- signed_parts(d, zm)
    for (g in c(1, 1.3, 2, 3)) {
      add(ex, "wilcoxon", "normal", zm, g,
          normal_tail(parts, g / (1 + g)), normal_tail(parts, 1 / (1 + g)))
      add(ex, "wilcoxon", "exact", zm, g,
          exact_tail(parts, g / (1 + g)), exact_tail(parts, 1 / (1 + g)))
    }
  }
}
# Gamma = 1 exact without ties is the ordinary exact one-sided signed-rank test.
add("small_noties", "wilcox.test", "exact", "wilcox", 1,
    wilcox.test(small_noties, alternative = "greater", exact = TRUE)$p.value, NA)

# Hammond's matched smokers and non-smokers (Rosenbaum 2002, section 4.3.2, p. 112):
# 110 discordant pairs in which only the smoker died of lung cancer, 12 in which only the
# non-smoker did; rbounds::binarysens(12, 110).
for (g in c(1, 2, 3, 4, 5, 5.5, 6)) {
  add("hammond", "mcnemar", "exact", "", g,
      sum(dbinom(110:122, 122, g / (1 + g))), sum(dbinom(110:122, 122, 1 / (1 + g))))
}
# Small discordant counts like the study's positive outcome (7 vs 3).
for (g in c(1, 1.5, 2, 3)) {
  add("small_binary", "mcnemar", "exact", "", g,
      sum(dbinom(7:10, 10, g / (1 + g))), sum(dbinom(7:10, 10, 1 / (1 + g))))
}
add("small_binary", "binom.test", "exact", "", 1,
    binom.test(7, 10, alternative = "greater")$p.value, NA)

res <- do.call(rbind, rows)
write.csv(res, out, row.names = FALSE)
cat(R.version.string, "\n")
print(res, digits = 6)
