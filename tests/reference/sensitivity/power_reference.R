# Reference values for esi.sensitivity.power (tests/test_sensitivity_power.py).
# Run from the project root:  Rscript tests/reference/sensitivity/power_reference.R
# Writes power_reference.csv (analytic power, detectable difference and n per group) and
# tost_reference.csv (two one-sided t-tests on fixed data) beside this script.
dir <- file.path("tests", "reference", "sensitivity")

# The paper's design: 14 per group, leg-pain-reduction SDs 2.55 (cases) and 2.15 (controls)
# at 4 weeks. Student t power with the root-mean-square SD (equal n, so the variance of the
# difference in means is (s1^2 + s2^2) / n = 2 s^2 / n).
s1 <- 2.55; s2 <- 2.15; n <- 14
s <- sqrt((s1^2 + s2^2) / 2)
rows <- list()
add <- function(quantity, difference, value) {
  rows[[length(rows) + 1]] <<- data.frame(quantity = quantity, difference = difference,
                                          value = value)
}
for (d in c(0.5, 1, 2, 3)) {
  add("power_student", d, power.t.test(n = n, delta = d, sd = s, sig.level = 0.05)$power)
}
add("mdd_student", NA, power.t.test(n = n, power = 0.8, sd = s, sig.level = 0.05)$delta)
for (d in c(1, 2)) {
  add("n_student", d, ceiling(power.t.test(delta = d, power = 0.8, sd = s,
                                           sig.level = 0.05)$n))
}
# Paired t on 14 pairs with within-pair correlation 0.5: SD of a difference
# sqrt(s1^2 + s2^2 - 2 * 0.5 * s1 * s2).
sd_diff <- sqrt(s1^2 + s2^2 - 2 * 0.5 * s1 * s2)
for (d in c(1, 2)) {
  add("power_paired_r05", d, power.t.test(n = n, delta = d, sd = sd_diff, sig.level = 0.05,
                                          type = "paired")$power)
}
write.csv(do.call(rbind, rows), file.path(dir, "power_reference.csv"), row.names = FALSE)

# TOST on fixed leg-pain reductions (0.5-point steps, like the NRS).
cases <- c(2, 4.5, 0, 3, 6, 1.5, -1, 2.5, 5, 0.5, 3.5, 2, 1, 4)
controls <- c(3, 2.5, 1, 4, 5.5, 2, 0, 3.5, 2, 1.5, 4, 3, 2.5, 2)
margin <- 1.5
tost_rows <- list()
for (kind in c("welch", "student", "paired_t")) {
  args <- switch(kind,
                 welch = list(var.equal = FALSE, paired = FALSE),
                 student = list(var.equal = TRUE, paired = FALSE),
                 paired_t = list(var.equal = FALSE, paired = TRUE))
  lo <- do.call(t.test, c(list(x = cases, y = controls, mu = -margin,
                               alternative = "greater"), args))
  hi <- do.call(t.test, c(list(x = cases, y = controls, mu = margin,
                               alternative = "less"), args))
  ci <- do.call(t.test, c(list(x = cases, y = controls, conf.level = 0.90), args))$conf.int
  tost_rows[[kind]] <- data.frame(test = kind, margin = margin, t_lower = lo$statistic,
                                  p_lower = lo$p.value, t_upper = hi$statistic,
                                  p_upper = hi$p.value, df = lo$parameter,
                                  ci_low = ci[1], ci_high = ci[2])
}
write.csv(do.call(rbind, tost_rows), file.path(dir, "tost_reference.csv"), row.names = FALSE)
cat(R.version.string, "\n")
print(do.call(rbind, rows)); print(do.call(rbind, tost_rows))
