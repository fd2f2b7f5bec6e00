//! Metric values as Kubernetes quantities, the way KEDA writes them
//! (`resource.NewMilliQuantity(int64(v*1000), DecimalSI)` in canonical form).

/// Formats `value` as a canonical DecimalSI quantity with milli precision: `2.5` → `2500m`,
/// `4` → `4`, `5000` → `5k`. As KEDA 2.20.2 (`quantityFromFloat64`): NaN, infinities and
/// negative values are 0, so an HPA never scales on them; values past int64 milli-units
/// (≈ 9.2e15) keep their magnitude rather than overflowing.
pub fn milli_quantity(value: f64) -> String {
    let milli = if value.is_finite() && value > 0.0 {
        (value * 1000.0) as i128
    } else {
        0
    };
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let mut units = milli / 1000;
    if units == 0 {
        return "0".into();
    }
    let mut suffix = 0;
    while units % 1000 == 0 && suffix < 6 {
        units /= 1000;
        suffix += 1;
    }
    format!("{units}{}", ["", "k", "M", "G", "T", "P", "E"][suffix])
}

/// Parses a quantity string (`"5"`, `"2500m"`, `"1.5"`, `"3k"`, `"2Ki"`) into a float.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        _ => return None,
    };
    Some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_canonically() {
        assert_eq!(milli_quantity(2.5), "2500m");
        assert_eq!(milli_quantity(4.0), "4");
        assert_eq!(milli_quantity(0.0), "0");
        assert_eq!(milli_quantity(5000.0), "5k");
        assert_eq!(milli_quantity(0.001), "1m");
        assert_eq!(milli_quantity(-3.0), "0");
        assert_eq!(milli_quantity(-0.5), "0");
        assert_eq!(milli_quantity(f64::INFINITY), "0");
        assert_eq!(milli_quantity(f64::NEG_INFINITY), "0");
        // KEDA's overflow case (value × 1000 past i64::MAX).
        assert_eq!(milli_quantity(1e16), "10P");
        assert_eq!(milli_quantity(9.3e15), "9300T");
        assert_eq!(milli_quantity(f64::NAN), "0");
    }

    #[test]
    fn parses_quantities() {
        assert_eq!(parse_quantity("2500m"), Some(2.5));
        assert_eq!(parse_quantity("5"), Some(5.0));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("2Ki"), Some(2048.0));
        assert_eq!(parse_quantity("x"), None);
        assert_eq!(parse_quantity("5q"), None);
    }
}
