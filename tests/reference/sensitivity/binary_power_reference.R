# Reference values for the power of the binary-outcome tests (esi.sensitivity.power:
# binary_power, binary_sample_size; tests/test_sensitivity_power.py). Base R only.
# Run from the project root:  Rscript tests/reference/sensitivity/binary_power_reference.R
# Writes tests/reference/sensitivity/binary_power_reference.csv (columns design, n, p_cases,
# p_controls, test, quantity, value, mc_se).
#
# Tests as esi's binary_test names them, on the table
#   cases:    x1 events, n - x1 without      (rows as matrix(..., byrow = TRUE))
#   controls: x2 events, n - x2 without
# fisher_less = fisher.test(alternative = "less"), fisher = fisher.test (two-sided),
# chi2 = chisq.test(correct = FALSE), chi2_yates = chisq.test(correct = TRUE).
#
# Quantities:
#   power_exact       sum of dbinom(x1, n, p_cases) * dbinom(x2, n, p_controls) over every
#                     outcome (x1, x2) whose test gives P < 0.05 (chisq.test: NaN, a zero
#                     margin, never rejects): R's own tests on every table;
#   power_simulation  share of 20000 simulated studies (set.seed(2025), rbinom) with P < 0.05
#                     (Monte Carlo standard error in mc_se);
#   power_normal      power.prop.test(n, p1, p2) (two-sided; one.sided for fisher_less);
#   n_normal          power.prop.test(p1, p2, power = 0.8)$n (not rounded);
#   n_exact           the smallest n per group (every n from 3 to 200 tried) whose exact
#                     power reaches 0.8, for fisher_less (P = phyper(x1, x1 + x2, 2 n - x1 -
#                     x2, n), which is fisher.test(alternative = "less")$p.value, checked
#                     below) and chi2 (P = pchisq(X2, 1, lower.tail = FALSE), X2 = N (ad -
#                     bc)^2 / (r1 r2 c1 c2), which is chisq.test(correct = FALSE), checked).

dir <- file.path("tests", "reference", "sensitivity")
alpha <- 0.05
designs <- list(
  published_4w = list(n = 14, p1 = 4 / 14, p2 = 7 / 14),  # the paper: 28.57 % vs 50 % of 14
  larger = list(n = 30, p1 = 0.2, p2 = 0.45)
)
tests <- c("fisher_less", "fisher", "chi2", "chi2_yates")

p_of <- function(test, x1, x2, n) {
  m <- matrix(c(x1, n - x1, x2, n - x2), 2, 2, byrow = TRUE)
  switch(test,
         fisher_less = fisher.test(m, alternative = "less")$p.value,
         fisher = fisher.test(m)$p.value,
         chi2 = suppressWarnings(chisq.test(m, correct = FALSE)$p.value),
         chi2_yates = suppressWarnings(chisq.test(m, correct = TRUE)$p.value))
}

rows <- list()
add <- function(design, n, p1, p2, test, quantity, value, mc_se = NA) {
  rows[[length(rows) + 1]] <<- data.frame(design = design, n = n, p_cases = p1,
                                          p_controls = p2, test = test, quantity = quantity,
                                          value = value, mc_se = mc_se)
}

for (nm in names(designs)) {
  d <- designs[[nm]]; n <- d$n
  grid <- expand.grid(x1 = 0:n, x2 = 0:n)
  w <- dbinom(grid$x1, n, d$p1) * dbinom(grid$x2, n, d$p2)
  set.seed(2025)
  n_sim <- 20000
  sim1 <- rbinom(n_sim, n, d$p1)
  sim2 <- rbinom(n_sim, n, d$p2)
  for (test in tests) {
    p <- mapply(function(a, b) p_of(test, a, b, n), grid$x1, grid$x2)
    rej <- !is.na(p) & p < alpha
    add(nm, n, d$p1, d$p2, test, "power_exact", sum(w[rej]))
    # simulated studies: the P of each table looked up in the enumeration above
    key <- sim1 + (n + 1) * sim2 + 1  # row of expand.grid(x1 = 0:n, x2 = 0:n)
    share <- mean(rej[key])
    add(nm, n, d$p1, d$p2, test, "power_simulation", share, sqrt(share * (1 - share) / n_sim))
  }
  add(nm, n, d$p1, d$p2, "fisher_less", "power_normal",
      power.prop.test(n = n, p1 = d$p1, p2 = d$p2, alternative = "one.sided")$power)
  add(nm, n, d$p1, d$p2, "chi2", "power_normal",
      power.prop.test(n = n, p1 = d$p1, p2 = d$p2)$power)
  add(nm, NA, d$p1, d$p2, "fisher_less", "n_normal",
      power.prop.test(p1 = d$p1, p2 = d$p2, power = 0.8, alternative = "one.sided")$n)
  add(nm, NA, d$p1, d$p2, "chi2", "n_normal",
      power.prop.test(p1 = d$p1, p2 = d$p2, power = 0.8)$n)
}

# Exact power over n (vectorised P-values, checked against fisher.test / chisq.test) and the
# smallest n reaching 80 %.
p_less <- function(x1, x2, n) phyper(x1, x1 + x2, 2 * n - x1 - x2, n)
p_chi2 <- function(x1, x2, n) {
  a <- x1; b <- n - x1; c <- x2; dd <- n - x2
  r1 <- a + b; r2 <- c + dd; c1 <- a + c; c2 <- b + dd
  x2stat <- (r1 + r2) * (a * dd - b * c)^2 / (r1 * r2 * c1 * c2)
  ifelse(c1 == 0 | c2 == 0, NA, pchisq(x2stat, 1, lower.tail = FALSE))
}
g <- expand.grid(x1 = 0:14, x2 = 0:14)
stopifnot(isTRUE(all.equal(p_less(g$x1, g$x2, 14),
                           mapply(function(a, b) p_of("fisher_less", a, b, 14), g$x1, g$x2),
                           tolerance = 1e-12)))
ref_chi2 <- mapply(function(a, b) p_of("chi2", a, b, 14), g$x1, g$x2)
stopifnot(isTRUE(all.equal(p_chi2(g$x1, g$x2, 14), ref_chi2, tolerance = 1e-12)))
exact_power <- function(pfun, n, p1, p2) {
  g <- expand.grid(x1 = 0:n, x2 = 0:n)
  p <- pfun(g$x1, g$x2, n)
  w <- dbinom(g$x1, n, p1) * dbinom(g$x2, n, p2)
  sum(w[!is.na(p) & p < alpha])
}
for (nm in names(designs)) {
  d <- designs[[nm]]
  for (test in c("fisher_less", "chi2")) {
    pfun <- if (test == "fisher_less") p_less else p_chi2
    pw <- vapply(3:200, function(n) exact_power(pfun, n, d$p1, d$p2), 0)
    add(nm, NA, d$p1, d$p2, test, "n_exact", (3:200)[which(pw >= 0.8)[1]])
    for (n in c(20, 50)) add(nm, n, d$p1, d$p2, test, "power_exact", pw[n - 2])
  }
}

res <- do.call(rbind, rows)
write.csv(res, file.path(dir, "binary_power_reference.csv"), row.names = FALSE)
cat(R.version.string, "\n")
print(res, digits = 6)
