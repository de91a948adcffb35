//! The kinds of garment a photo of an outfit is cut into, and which catalogue items are
//! of which kind: the one table, here and in `training/garments.py` (`KINDS`, `kind_of`),
//! which the garment finder was trained with (its output channels follow [`Kind::ALL`]).

use std::fmt;

/// A kind of garment or accessory the garment finder tells apart.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Top,
    Outerwear,
    Bottom,
    Dress,
    Shoes,
    Bag,
    Hat,
}

/// Article types of the catalogue's Topwear that are worn over a top.
const OUTERWEAR: [&str; 5] = ["Jackets", "Blazers", "Sweaters", "Waistcoat", "Rain Jacket"];

impl Kind {
    /// Every kind, in the order of the finder's output channels 1..=7 (0 is "none").
    pub const ALL: [Kind; 7] =
        [Kind::Top, Kind::Outerwear, Kind::Bottom, Kind::Dress, Kind::Shoes, Kind::Bag, Kind::Hat];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Top => "top",
            Kind::Outerwear => "outerwear",
            Kind::Bottom => "bottom",
            Kind::Dress => "dress",
            Kind::Shoes => "shoes",
            Kind::Bag => "bag",
            Kind::Hat => "hat",
        }
    }

    /// The catalogue's `subCategory` values holding this kind (outerwear and tops share
    /// Topwear): a garment's results are kept among them.
    pub fn sub_categories(self) -> &'static [&'static str] {
        match self {
            Kind::Top | Kind::Outerwear => &["Topwear"],
            Kind::Bottom => &["Bottomwear"],
            Kind::Dress => &["Dress"],
            Kind::Shoes => &["Shoes", "Sandal", "Flip Flops"],
            Kind::Bag => &["Bags"],
            Kind::Hat => &["Headwear"],
        }
    }

    /// The catalogue's `articleType` values this kind is kept to besides its
    /// subCategory, where the subCategory holds other kinds too (outerwear in Topwear).
    pub fn article_types(self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Outerwear => Some(&OUTERWEAR),
            _ => None,
        }
    }

    /// The kind of a catalogue item, from its `subCategory` and `articleType` (the
    /// Kaggle catalogue's columns); `None` for everything else (watches, belts, ...).
    pub fn of_item(sub_category: &str, article_type: &str) -> Option<Kind> {
        Some(match sub_category {
            "Topwear" if OUTERWEAR.contains(&article_type) => Kind::Outerwear,
            "Topwear" => Kind::Top,
            "Bottomwear" => Kind::Bottom,
            "Dress" => Kind::Dress,
            "Shoes" | "Sandal" | "Flip Flops" => Kind::Shoes,
            "Bags" => Kind::Bag,
            "Headwear" => Kind::Hat,
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown kind of garment '{s}': use {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_follows_sub_category_with_outerwear_apart() {
        assert_eq!(Kind::of_item("Topwear", "Tshirts"), Some(Kind::Top));
        assert_eq!(Kind::of_item("Topwear", "Blazers"), Some(Kind::Outerwear));
        assert_eq!(Kind::of_item("Bottomwear", "Jeans"), Some(Kind::Bottom));
        assert_eq!(Kind::of_item("Dress", "Dresses"), Some(Kind::Dress));
        assert_eq!(Kind::of_item("Flip Flops", "Flip Flops"), Some(Kind::Shoes));
        assert_eq!(Kind::of_item("Headwear", "Caps"), Some(Kind::Hat));
        assert_eq!(Kind::of_item("Watches", "Watches"), None);
    }

    #[test]
    fn names_read_back() {
        for k in Kind::ALL {
            assert_eq!(k.name().parse::<Kind>(), Ok(k));
        }
        assert!("scarf".parse::<Kind>().unwrap_err().contains("top, outerwear"));
    }
}
