# Reference values for the audit's rounding rule: GRIM, GRIMMER and SPRITE on rounding halves
# (tests/test_rounding_reference.py; issue 15).
#
# Run from the project root with rsprite2 0.2.1 installed (it is not needed to run the tests):
#   R_LIBS=/path/to/lib Rscript tests/reference/audit/rounding_reference.R
# rsprite2 0.2.1 and its dependencies (checkmate, backports, Rdpack, rbibutils) install from
# the public CRAN mirror on GitHub (cran/<package>) with R CMD INSTALL -l LIB on a git archive
# of the release commit (README of /work/shared/TOOLING.md in the project notes).
#
# Writes, beside this script:
#   rounding_grim_grimmer.csv  the means (GRIM) and SDs (GRIMMER) of a grid that includes
#                              every rounding half which rsprite2::GRIM_test / GRIMMER_test
#                              accept, and those for which a brute-force enumeration of every
#                              sample (small n) finds one;
#   rounding_sprite.csv        samples found by rsprite2::find_possible_distributions (fixed
#                              seed) and every sample by enumeration, for SPRITE targets on a
#                              rounding half.
#
# The enumeration is the ground truth: a sample fits a reported mean (SD) at d decimals when
# its mean (SD) lies in the closed interval of half a unit of the last decimal around it, i.e.
# rounds to it under some convention (half up, half to even, ...). It is done in exact
# integer arithmetic: n * sum(x^2) - sum(x)^2 against the squared ends of the SD interval.

suppressPackageStartupMessages(library(rsprite2))
dir <- file.path("tests", "reference", "audit")
cat(R.version.string, "; rsprite2", as.character(packageVersion("rsprite2")), "\n")

# All multisets of n values from 0..top (as rows), small n and top only.
multisets <- function(n, top) {
  out <- matrix(0L, 0, n)
  rec <- function(prefix, start) {
    if (length(prefix) == n) {
      out <<- rbind(out, prefix)
      return(invisible())
    }
    for (v in start:top) rec(c(prefix, v), v)
  }
  rec(integer(0), 0L)
  unname(out)
}

# Does a sample with sum S and sum of squares Q (integers, n values) fit a reported mean m and
# SD s (decimals dm, ds; closed intervals, exact in integers scaled by 2 * 10^d)?
fits_mean <- function(S, n, m, dm) {
  # |S / n - m| <= 0.5 10^-dm  <=>  |2 10^dm S - 2 10^dm m n| <= n
  sc <- 2 * 10^dm
  abs(sc * S - round(sc * m) * n) <= n
}
fits_sd <- function(S, Q, n, s, ds) {
  # var = (n Q - S^2) / (n (n - 1)); (s - h)^2 <= var <= (s + h)^2 with h = 0.5 10^-ds:
  # scaled by (2 10^ds)^2: (2 10^ds s -+ 1)^2 n (n - 1) vs (2 10^ds)^2 (n Q - S^2)
  sc <- 2 * 10^ds
  k <- round(sc * s)
  lhs <- sc^2 * (n * Q - S^2)
  lo <- max(k - 1, 0)^2 * n * (n - 1)
  hi <- (k + 1)^2 * n * (n - 1)
  lhs >= lo & lhs <= hi
}

# ----------------------------------------------------------------------------- GRIM, GRIMMER
# One row per (check, n, n_items, mean): the reported values of a grid (means for GRIM, SDs
# for GRIMMER; written with their decimals) that rsprite2 accepts and that the enumeration
# finds a sample for, space-separated. The test runs esi over the same grid.
rows <- list()
add <- function(check, n, items, mean, prec, grid, ok_r, ok_e) {
  rows[[length(rows) + 1]] <<- data.frame(
    check = check, n = n, n_items = items, mean = mean, m_prec = 2, value_prec = prec,
    grid = paste(grid[1], grid[length(grid)], length(grid)),
    rsprite2 = paste(grid[ok_r], collapse = " "), enumeration = paste(grid[ok_e], collapse = " "))
}
# GRIM: means 0.00 .. 3.00 for sample sizes whose means can sit on a half at two decimals
# (8, 24, 40: k / n * 200 odd) and some that cannot; integer values, or averages of two
# integer items (n_items = 2, steps of 0.5).
for (n in c(4, 5, 7, 8, 12, 24, 28, 40)) {
  for (items in c(1, 2)) {
    if (n * items > 100) next
    ks <- 0:300
    ok_r <- vapply(ks, function(k) GRIM_test(k / 100, n, 2, items), TRUE)
    # some whole K (sum of all item scores) with |K / (items n) - k / 100| <= 1 / 200
    ok_e <- vapply(ks, function(k)
      any(abs(200 * (0:(3 * n * items + 1)) - 2 * k * n * items) <= n * items), TRUE)
    add("GRIM", n, items, "", 2, sprintf("%.2f", ks / 100), ok_r, ok_e)
  }
}
# GRIMMER: integer samples of n values in 0..top; every reported mean (two decimals) with a
# sum some sample has, both roundings of a half, SDs 0.00 .. 2.00 (two decimals), and SDs 0,
# 1, 2 at no decimals (an SD of exactly 0.5 or 1.5 is a half). The enumeration reports
# whether some sample in 0..top fits; GRIMMER_test does not know the range (a necessary
# condition only), so the test compares: enumeration TRUE => GRIMMER TRUE.
grimmer_cases <- list(c(n = 4, top = 3), c(n = 5, top = 4), c(n = 8, top = 4))
for (cs in grimmer_cases) {
  n <- cs[["n"]]; top <- cs[["top"]]
  ms <- multisets(n, top)
  S <- rowSums(ms); Q <- rowSums(ms^2)
  for (sum_ in sort(unique(S))) {
    exact <- sum_ / n
    reported <- unique(c(floor(exact * 100 + 1e-9) / 100, ceiling(exact * 100 - 1e-9) / 100))
    reported <- reported[abs(reported - exact) <= 0.005 + 1e-12]
    sel <- S == sum_
    for (m in reported) {
      for (ds in c(2, 0)) {
        sds <- if (ds == 2) (0:200) / 100 else 0:2
        ok_r <- vapply(sds, function(s) suppressWarnings(GRIMMER_test(m, s, n, 2, ds)), TRUE)
        ok_e <- vapply(sds, function(s) any(fits_sd(S[sel], Q[sel], n, s, ds)), TRUE)
        add("GRIMMER", n, 1, sprintf("%.2f", m), ds, sprintf(paste0("%.", ds, "f"), sds),
            ok_r, ok_e)
      }
    }
  }
}
grim <- do.call(rbind, rows)
write.csv(grim, file.path(dir, "rounding_grim_grimmer.csv"), row.names = FALSE)

# ----------------------------------------------------------------------------------- SPRITE
targets <- list(
  list(id = "issue15_238", n = 8, mean = 2.38, sd = 0.74, lo = 1, hi = 5, dm = 2, ds = 2),
  list(id = "issue15_237", n = 8, mean = 2.37, sd = 0.74, lo = 1, hi = 5, dm = 2, ds = 2),
  list(id = "mean_0125", n = 8, mean = 0.13, sd = 0.35, lo = 0, hi = 3, dm = 2, ds = 2),
  list(id = "mean_0125_even", n = 8, mean = 0.12, sd = 0.35, lo = 0, hi = 3, dm = 2, ds = 2),
  list(id = "sd_half", n = 4, mean = 0.75, sd = 2, lo = 0, hi = 3, dm = 2, ds = 0),
  list(id = "inside", n = 6, mean = 2.17, sd = 1.17, lo = 0, hi = 5, dm = 2, ds = 2)
)
srows <- list()
for (t in targets) {
  ms <- multisets(t$n, t$hi - t$lo) + t$lo
  S <- rowSums(ms); Q <- rowSums(ms^2)
  ok <- fits_mean(S, t$n, t$mean, t$dm) & fits_sd(S, Q, t$n, t$sd, t$ds)
  for (i in which(ok)) {
    srows[[length(srows) + 1]] <- data.frame(id = t$id, n = t$n, mean = t$mean, sd = t$sd,
                                             lower = t$lo, upper = t$hi, m_prec = t$dm,
                                             sd_prec = t$ds, source = "enumeration",
                                             sample = paste(ms[i, ], collapse = " "))
  }
  # rsprite2 (seed 1, up to 20 distinct samples); an error (it refuses some targets on a
  # half, see the test) is recorded as such.
  found <- tryCatch({
    p <- set_parameters(t$mean, t$sd, t$n, t$lo, t$hi, m_prec = t$dm, sd_prec = t$ds)
    r <- suppressWarnings(suppressMessages(
      find_possible_distributions(p, 20, seed = 1, return_tibble = FALSE)))
    vapply(r$distribution, function(v) paste(sort(v), collapse = " "), "")
  }, error = function(e) paste("error:", gsub("\\s+", " ", conditionMessage(e))))
  for (f in found) {
    srows[[length(srows) + 1]] <- data.frame(id = t$id, n = t$n, mean = t$mean, sd = t$sd,
                                             lower = t$lo, upper = t$hi, m_prec = t$dm,
                                             sd_prec = t$ds, source = "rsprite2", sample = f)
  }
}
sprite <- do.call(rbind, srows)
write.csv(sprite, file.path(dir, "rounding_sprite.csv"), row.names = FALSE)
print(table(grim$check, grim$rsprite2 == grim$enumeration))
print(sprite)
