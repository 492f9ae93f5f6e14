# Reference values for esi.sensitivity.rosenbaum (tests/test_rosenbaum.py).
# Run from the project root, with rbounds 2.2 installed (R_LIBS; it is not needed to run the
# tests; it installs from the public CRAN mirror on GitHub, cran/rbounds, with
# R CMD INSTALL -l LIB on a git archive of the release commit):
#   R_LIBS=/path/to/lib Rscript tests/reference/sensitivity/rosenbaum_reference.R
# Writes tests/reference/sensitivity/rosenbaum_reference.csv.
#
# The signed-rank formulas are those of rbounds 2.2 (psens; Keele) and DOS2 (senWilcox,
# senWilcoxExact; Rosenbaum), written out here in base R:
#   psens:      zeros dropped, average ranks; E = p * sum(r), V = p (1 - p) * sum(r^2);
#               P = 1 - pnorm((T - E) / sqrt(V)) with p = Gamma / (1 + Gamma) (upper),
#               1 / (1 + Gamma) (lower).
#   senWilcox:  the same, but |d| ranked with the zeros, which then get rank 0.
#   exact:      distribution of sum(r_i B_i), B_i ~ Bernoulli(p), by convolution
#               (senWilcoxExact; here with doubled ranks so that tied average ranks work).
# McNemar's statistic on D discordant pairs favouring the direction tested out of n:
#   test "mcnemar": the textbook tail P(B >= D) = sum(dbinom(D:n, n, p)) of Rosenbaum (2002,
#               section 4.3.2), which esi computes; at Gamma = 1 it is binom.test(D, n,
#               alternative = "greater")$p.value.
#   test "binarysens": the real output of rbounds::binarysens(x, y, Gamma, GammaInc) (its
#               bounds table, rounded by rbounds to 5 decimals). binarysens takes
#               D = max(x, y) and computes 1 - pbinom(D, n, p) = P(B > D): the tail without
#               the observed count, so it is smaller than esi's by dbinom(D, n, p).
#   test "binarysens_formula": 1 - pbinom(D, n, p) unrounded (binarysens' own expression).

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
# The default run's positive outcome at 4 weeks: 5 discordant pairs in which only the control
# had a positive outcome, 2 in which only the case had (alternative "less" in esi).
for (g in c(1, 1.5, 2, 3)) {
  add("default_positive", "mcnemar", "exact", "", g,
      sum(dbinom(5:7, 7, g / (1 + g))), sum(dbinom(5:7, 7, 1 / (1 + g))))
}
add("default_positive", "binom.test", "exact", "", 1,
    binom.test(5, 7, alternative = "greater")$p.value, NA)

# rbounds::binarysens itself (x, y: the two discordant counts, in either order; Gamma from 1
# by GammaInc), and its expression 1 - pbinom(D, n, p) unrounded.
binary_cases <- list(hammond = c(x = 110, y = 12, Gamma = 6, GammaInc = 0.5),
                     small_binary = c(x = 7, y = 3, Gamma = 3, GammaInc = 0.5),
                     default_positive = c(x = 2, y = 5, Gamma = 3, GammaInc = 0.5))
for (ex in names(binary_cases)) {
  v <- binary_cases[[ex]]
  b <- rbounds::binarysens(v[["x"]], v[["y"]], Gamma = v[["Gamma"]], GammaInc = v[["GammaInc"]])
  D <- max(v[["x"]], v[["y"]]); n <- v[["x"]] + v[["y"]]
  for (i in seq_len(nrow(b$bounds))) {
    g <- b$bounds$Gamma[i]
    add(ex, "binarysens", "exact", "", g, b$bounds[["Upper bound"]][i],
        b$bounds[["Lower bound"]][i])
    add(ex, "binarysens_formula", "exact", "", g, 1 - pbinom(D, n, g / (1 + g)),
        1 - pbinom(D, n, 1 / (1 + g)))
  }
}

res <- do.call(rbind, rows)
write.csv(res, out, row.names = FALSE)
cat(R.version.string, "; rbounds", as.character(packageVersion("rbounds")), "\n")
print(res, digits = 6)
